// Search policies and the search space, without a database: a synthetic objective (a quadratic
// bowl in two dimensions) stands in for the runs' results, and each policy is run as the search
// loop runs it, step by step, the proposals "finishing" with the objective's value.
#include "scheduler/search_policy.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "scheduler/search_space.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::v1::SearchSweep;

// x in [-4, 4] (linear), y in [0.01, 100] (log); the minimum (0) is at x = 1, y = 1.
SearchSweep BowlSpec(const std::string& policy, int64_t seed) {
  SearchSweep spec;
  spec.set_policy(policy);
  auto* x = spec.add_dimensions();
  x->set_key("x");
  x->set_low(-4);
  x->set_high(4);
  auto* y = spec.add_dimensions();
  y->set_key("y");
  y->set_low(0.01);
  y->set_high(100);
  y->set_log(true);
  spec.set_budget(40);
  spec.set_parallel(2);
  spec.set_initial(4);
  spec.set_seed(seed);
  ApplySearchDefaults(&spec);
  return spec;
}

double Bowl(const SearchPoint& point) {
  double x = 0, y = 0;
  REQUIRE(absl::SimpleAtod(point.at("x"), &x));
  REQUIRE(absl::SimpleAtod(point.at("y"), &y));
  return (x - 1) * (x - 1) + std::log10(y) * std::log10(y);
}

struct Outcome {
  double best_draft = 0;
  double best = 0;
  std::vector<SearchCandidate> tree;
  std::vector<std::string> ops;
};

// Runs a search to its budget: `initial` drafts, then `parallel` proposals per step, each
// finishing before the next step (run ids 1, 2, ...).
Outcome RunSearch(const SearchSweep& spec) {
  auto space = SearchSpace::Create(spec.dimensions(), "sweep.search.space");
  REQUIRE(space.ok());
  Outcome outcome;
  int64_t next_id = 1;
  int generation = 0;
  auto finish = [&](const std::vector<SearchProposal>& proposals) {
    for (const SearchProposal& proposal : proposals) {
      SearchCandidate node;
      node.run_id = next_id++;
      node.point = proposal.point;
      node.parents = proposal.parents;
      node.finished = true;
      node.objective = Bowl(proposal.point);
      outcome.tree.push_back(node);
      outcome.ops.push_back(proposal.op);
    }
  };
  SearchRng drafts = SearchRng::ForGeneration(spec.seed(), generation);
  finish(ProposeRuns(*space, spec, {}, spec.initial(), drafts));
  outcome.best_draft = 1e9;
  for (const SearchCandidate& node : outcome.tree) {
    outcome.best_draft = std::min(outcome.best_draft, *node.objective);
  }
  while (static_cast<int>(outcome.tree.size()) < spec.budget()) {
    SearchRng rng = SearchRng::ForGeneration(spec.seed(), ++generation);
    const int count =
        std::min<int>(spec.parallel(), spec.budget() - static_cast<int>(outcome.tree.size()));
    std::vector<SearchProposal> proposals = ProposeRuns(*space, spec, outcome.tree, count, rng);
    REQUIRE(!proposals.empty());
    finish(proposals);
  }
  outcome.best = 1e9;
  for (const SearchCandidate& node : outcome.tree)
    outcome.best = std::min(outcome.best, *node.objective);
  return outcome;
}

TEST_CASE("Each policy finds a better point of a quadratic bowl than its random drafts",
          "[scheduler][search]") {
  for (const std::string policy : {"greedy", "evolutionary", "mcts"}) {
    for (int64_t seed : {1, 2, 3}) {
      CAPTURE(policy, seed);
      const Outcome outcome = RunSearch(BowlSpec(policy, seed));
      CHECK(outcome.tree.size() == 40);
      CHECK(outcome.best < outcome.best_draft);
    }
  }
}

TEST_CASE("A search is deterministic given its seed and differs with another seed",
          "[scheduler][search]") {
  for (const std::string policy : {"greedy", "evolutionary", "mcts"}) {
    CAPTURE(policy);
    const Outcome first = RunSearch(BowlSpec(policy, 7));
    const Outcome again = RunSearch(BowlSpec(policy, 7));
    const Outcome other = RunSearch(BowlSpec(policy, 8));
    REQUIRE(first.tree.size() == again.tree.size());
    bool differs = false;
    for (size_t idx = 0; idx < first.tree.size(); ++idx) {
      CHECK(first.tree[idx].point == again.tree[idx].point);
      CHECK(first.tree[idx].parents == again.tree[idx].parents);
      CHECK(first.ops[idx] == again.ops[idx]);
      differs = differs || first.tree[idx].point != other.tree[idx].point;
    }
    CHECK(differs);
  }
}

TEST_CASE("Proposals never repeat a point and name their parents and operator",
          "[scheduler][search]") {
  for (const std::string policy : {"greedy", "evolutionary", "mcts"}) {
    CAPTURE(policy);
    const Outcome outcome = RunSearch(BowlSpec(policy, 5));
    std::set<SearchPoint> points;
    std::set<std::string> ops;
    for (size_t idx = 0; idx < outcome.tree.size(); ++idx) {
      const SearchCandidate& node = outcome.tree[idx];
      CHECK(points.insert(node.point).second);
      ops.insert(outcome.ops[idx]);
      if (outcome.ops[idx] == "draft") {
        CHECK(node.parents.empty());
      } else {
        REQUIRE(!node.parents.empty());
        CHECK(node.parents[0] < node.run_id);  // derived from a run that existed
        if (outcome.ops[idx].rfind("crossover", 0) == 0) CHECK(node.parents.size() == 2);
      }
    }
    CHECK(ops.count("draft") > 0);
    CHECK(ops.size() >= 3);  // drafts plus at least two operators
  }
}

TEST_CASE("MCTS spreads one step's proposals over the tree and records visits",
          "[scheduler][search]") {
  SearchSweep spec = BowlSpec("mcts", 3);
  spec.clear_operators();
  spec.add_operators()->set_name("perturb");
  ApplySearchDefaults(&spec);
  auto space = SearchSpace::Create(spec.dimensions(), "s");
  REQUIRE(space.ok());
  // Two drafts, the first far better: a greedy walk would expand it only.
  std::vector<SearchCandidate> tree = {{1, {{"x", "1"}, {"y", "1"}}, {}, true, 0.0},
                                       {2, {{"x", "-3"}, {"y", "50"}}, {}, true, 19.0}};
  SearchRng rng(11);
  std::vector<SearchProposal> proposals = ProposeRuns(*space, spec, tree, 4, rng);
  REQUIRE(proposals.size() == 4);
  std::set<int64_t> parents;
  for (const SearchProposal& proposal : proposals) {
    REQUIRE(proposal.parents.size() == 1);
    parents.insert(proposal.parents[0]);
    CHECK(proposal.policy_state.find("\"visits\"") != std::string::npos);
  }
  CHECK(parents.count(1) == 1);
  CHECK(parents.size() == 2);  // the virtual visits sent a later proposal to the other root
}

TEST_CASE("The space samples within its ranges, rounds, and operators stay inside",
          "[scheduler][search]") {
  SearchSweep spec;
  auto* width = spec.add_dimensions();
  width->set_key("model.d_model");
  width->set_low(64);
  width->set_high(512);
  width->set_step(64);
  auto* layers = spec.add_dimensions();
  layers->set_key("model.n_layers");
  layers->set_low(2);
  layers->set_high(6);
  layers->set_integer(true);
  auto* schedule = spec.add_dimensions();
  schedule->set_key("train.schedule");
  schedule->add_values("cosine");
  schedule->add_values("wsd");
  auto space = SearchSpace::Create(spec.dimensions(), "sweep.random.space");
  REQUIRE(space.ok());
  CHECK(space->BoundaryValues(0) == std::vector<std::string>{"64", "512"});
  SearchRng rng(3);
  for (int draw = 0; draw < 200; ++draw) {
    SearchPoint point = space->Sample(rng);
    point = space->Perturb(point, 1.5, rng);
    point = space->Scale(point, 2, "model.d_model", rng);
    int d_model = 0, n_layers = 0;
    REQUIRE(absl::SimpleAtoi(point.at("model.d_model"), &d_model));
    REQUIRE(absl::SimpleAtoi(point.at("model.n_layers"), &n_layers));
    CHECK(d_model % 64 == 0);
    CHECK((d_model >= 64 && d_model <= 512));
    CHECK((n_layers >= 2 && n_layers <= 6));
    CHECK((point.at("train.schedule") == "cosine" || point.at("train.schedule") == "wsd"));
  }
  SearchPoint small = {
      {"model.d_model", "128"}, {"model.n_layers", "2"}, {"train.schedule", "wsd"}};
  CHECK(space->Scale(small, 2, "model.d_model", rng).at("model.d_model") == "256");
}

TEST_CASE("Bad spaces and search fields are refused with the field named", "[scheduler][search]") {
  SearchSweep spec;
  auto* dim = spec.add_dimensions();
  dim->set_key("train.lr");
  dim->set_low(0);
  dim->set_high(1);
  dim->set_log(true);
  auto space = SearchSpace::Create(spec.dimensions(), "sweep.search.space");
  REQUIRE(!space.ok());
  CHECK(std::string(space.status().message()) ==
        "sweep.search.space.\"train.lr\".low: expected a positive number for a log range, got 0");

  SearchSweep fields = BowlSpec("annealing", 1);
  absl::Status status = ValidateSearchFields(fields, "sweep.search");
  CHECK(std::string(status.message()) ==
        "sweep.search.policy: expected one of greedy, mcts, evolutionary, got \"annealing\"");
  fields = BowlSpec("greedy", 1);
  fields.set_initial(41);
  status = ValidateSearchFields(fields, "sweep.search");
  CHECK(std::string(status.message()) ==
        "sweep.search.initial: expected an integer in [1, budget = 40], got 41");
  fields = BowlSpec("greedy", 1);
  fields.set_objective("eval:pass@0");
  CHECK(!ValidateSearchFields(fields, "sweep.search").ok());
  fields.set_objective("eval:pass@1");
  CHECK(ValidateSearchFields(fields, "sweep.search").ok());
}

}  // namespace
}  // namespace scalelab::scheduler
