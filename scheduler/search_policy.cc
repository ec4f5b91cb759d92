#include "scheduler/search_policy.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "runspec/text.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::runspec::Quoted;
using ::scalelab::v1::SearchOperator;
using ::scalelab::v1::SearchSweep;

// A point proposed again is retried this many times before falling back to a draft.
constexpr int kTriesPerProposal = 16;
// A node with this many children is fully expanded: MCTS descends below it instead.
constexpr int kMctsMaxChildren = 3;

std::string Score(double value) { return absl::StrFormat("%.6g", value); }

// The scored runs, best first (ties: lower run id first, for determinism).
std::vector<const SearchCandidate*> Ranked(const std::vector<SearchCandidate>& tree,
                                           bool maximize) {
  std::vector<const SearchCandidate*> scored;
  for (const SearchCandidate& node : tree) {
    if (node.objective.has_value() && std::isfinite(*node.objective)) scored.push_back(&node);
  }
  std::sort(scored.begin(), scored.end(), [&](const SearchCandidate* a, const SearchCandidate* b) {
    if (*a->objective != *b->objective) {
      return maximize ? *a->objective > *b->objective : *a->objective < *b->objective;
    }
    return a->run_id < b->run_id;
  });
  return scored;
}

// The context every policy shares: the space, the operators, the points already taken.
class Proposer {
 public:
  Proposer(const SearchSpace& space, const SearchSweep& spec,
           const std::vector<SearchCandidate>& tree, SearchRng& rng)
      : space_(space), spec_(spec), rng_(rng) {
    for (const SearchCandidate& node : tree) taken_.insert(node.point);
  }

  bool Taken(const SearchPoint& point) const { return taken_.count(point) > 0; }
  void Take(const SearchPoint& point) { taken_.insert(point); }
  SearchRng& rng() { return rng_; }

  const SearchOperator& PickOperator() {
    return spec_.operators(rng_.Index(spec_.operators_size()));
  }
  bool HasOperator(const std::string& name) const {
    return std::any_of(spec_.operators().begin(), spec_.operators().end(),
                       [&](const SearchOperator& op) { return op.name() == name; });
  }
  const SearchOperator* FindOperator(const std::string& name) const {
    for (const SearchOperator& op : spec_.operators()) {
      if (op.name() == name) return &op;
    }
    return nullptr;
  }

  // One operator applied to `parent` (crossover with `mate`, or perturb when there is none).
  SearchProposal Apply(const SearchOperator& op, const SearchCandidate& parent,
                       const SearchCandidate* mate) {
    SearchProposal proposal;
    proposal.parents = {parent.run_id};
    if (op.name() == "crossover" && mate != nullptr) {
      proposal.point = space_.Crossover(parent.point, mate->point, rng_);
      proposal.parents.push_back(mate->run_id);
      proposal.op = "crossover";
    } else if (op.name() == "scale") {
      proposal.point = space_.Scale(parent.point, op.factor(), op.key(), rng_);
      proposal.op = "scale";
    } else {
      const SearchOperator* perturb = FindOperator("perturb");
      proposal.point = space_.Perturb(
          parent.point, perturb != nullptr ? perturb->factor() : kDefaultPerturbFactor, rng_);
      proposal.op = "perturb";
    }
    return proposal;
  }

  SearchProposal Draft() {
    SearchProposal proposal;
    proposal.point = space_.Sample(rng_);
    proposal.op = "draft";
    proposal.policy_state = "{}";
    return proposal;
  }

  // `make` until it gives a point not taken, else drafts; nullopt when even drafts repeat.
  template <typename MakeFn>
  std::optional<SearchProposal> Fresh(MakeFn make) {
    for (int attempt = 0; attempt < kTriesPerProposal; ++attempt) {
      SearchProposal proposal = make();
      if (!Taken(proposal.point)) return proposal;
    }
    for (int attempt = 0; attempt < kTriesPerProposal; ++attempt) {
      SearchProposal proposal = Draft();
      if (!Taken(proposal.point)) return proposal;
    }
    return std::nullopt;
  }

 private:
  const SearchSpace& space_;
  const SearchSweep& spec_;
  SearchRng& rng_;
  std::set<SearchPoint> taken_;
};

// Greedy: the best run so far, changed by one operator (crossover with the second best).
std::optional<SearchProposal> ProposeGreedy(Proposer& proposer,
                                            const std::vector<const SearchCandidate*>& ranked) {
  const SearchCandidate& best = *ranked[0];
  const SearchCandidate* second = ranked.size() > 1 ? ranked[1] : nullptr;
  return proposer.Fresh([&] {
    SearchProposal proposal = proposer.Apply(proposer.PickOperator(), best, second);
    proposal.policy_state = absl::StrCat("{\"parent_score\":", Score(*best.objective), "}");
    return proposal;
  });
}

// Evolutionary: tournament selection from the population of the best runs, crossover of two
// winners (when the operators include it) then a mutation (perturb or scale) of the child.
std::optional<SearchProposal> ProposeEvolutionary(
    Proposer& proposer, const SearchSweep& spec,
    const std::vector<const SearchCandidate*>& ranked) {
  const int population = std::min<int>(spec.population(), static_cast<int>(ranked.size()));
  auto tournament = [&]() -> const SearchCandidate* {
    int winner = population;
    for (int round = 0; round < spec.tournament(); ++round) {
      winner = std::min(winner, proposer.rng().Index(population));  // ranked: lower is better
    }
    return ranked[winner];
  };
  std::vector<SearchOperator> mutations;
  for (const std::string name : {"perturb", "scale"}) {
    if (const SearchOperator* op = proposer.FindOperator(name)) mutations.push_back(*op);
  }
  return proposer.Fresh([&] {
    const SearchCandidate* a = tournament();
    SearchProposal proposal;
    if (proposer.HasOperator("crossover") && population > 1) {
      const SearchCandidate* b = tournament();
      for (int retry = 0; b == a && retry < 4; ++retry) b = tournament();
      proposal = proposer.Apply(*proposer.FindOperator("crossover"), *a, b == a ? nullptr : b);
      if (!mutations.empty()) {
        SearchCandidate child{0, proposal.point, {}, false, std::nullopt};
        const SearchProposal mutated = proposer.Apply(
            mutations[proposer.rng().Index(static_cast<int>(mutations.size()))], child, nullptr);
        proposal.point = mutated.point;
        if (proposal.op == "crossover") proposal.op = absl::StrCat("crossover+", mutated.op);
      }
    } else {
      SearchOperator only;
      only.set_name("perturb");
      proposal = proposer.Apply(
          mutations.empty() ? only
                            : mutations[proposer.rng().Index(static_cast<int>(mutations.size()))],
          *a, nullptr);
    }
    proposal.policy_state = absl::StrCat("{\"parent_score\":", Score(*a->objective),
                                         ",\"population\":", population, "}");
    return proposal;
  });
}

// MCTS over the tree of runs. A node's visits are the scored runs in its subtree (itself
// included) plus the proposals already made below it in this step; its value is the mean
// normalized objective over that subtree (1 = the best run so far, 0 = the worst).
class Mcts {
 public:
  Mcts(const std::vector<SearchCandidate>& tree, bool maximize, double exploration)
      : exploration_(exploration) {
    double best = 0, worst = 0;
    bool any = false;
    for (const SearchCandidate& node : tree) {
      if (!node.objective.has_value() || !std::isfinite(*node.objective)) continue;
      best = any ? (maximize ? std::max(best, *node.objective) : std::min(best, *node.objective))
                 : *node.objective;
      worst = any ? (maximize ? std::min(worst, *node.objective) : std::max(worst, *node.objective))
                  : *node.objective;
      any = true;
    }
    for (const SearchCandidate& node : tree) {
      Node& entry = nodes_[node.run_id];
      entry.candidate = &node;
      if (node.objective.has_value() && std::isfinite(*node.objective)) {
        entry.reward = best == worst ? 0.5 : (*node.objective - worst) / (best - worst);
        entry.scored = true;
      }
    }
    for (const SearchCandidate& node : tree) {
      // A crossover child hangs below its first parent.
      const int64_t parent = node.parents.empty() ? 0 : node.parents[0];
      if (parent != 0 && nodes_.count(parent) > 0) {
        nodes_[parent].children.push_back(node.run_id);
        nodes_[node.run_id].parent = parent;
      } else {
        roots_.push_back(node.run_id);
      }
    }
    for (const SearchCandidate& node : tree) {
      if (!nodes_[node.run_id].scored) continue;
      for (int64_t at = node.run_id; at != 0; at = nodes_[at].parent) {
        nodes_[at].visits += 1;
        nodes_[at].value += nodes_[node.run_id].reward;
      }
    }
  }

  // The node to expand: from the roots, the child with the highest UCB until a node with room
  // for more children (or no scored child) is reached. 0 when nothing is scored.
  int64_t Select(std::string* state) {
    std::vector<int64_t> level = roots_;
    double parent_visits = 0;
    for (int64_t root : roots_) parent_visits += nodes_[root].visits;
    int64_t chosen = 0;
    double chosen_ucb = 0;
    while (true) {
      int64_t best = 0;
      double best_ucb = -1;
      for (int64_t id : level) {
        const Node& node = nodes_[id];
        if (!node.scored || node.visits <= 0) continue;
        const double ucb =
            node.value / node.visits +
            exploration_ * std::sqrt(std::log(std::max(parent_visits, 1.0)) / node.visits);
        if (ucb > best_ucb) best = id, best_ucb = ucb;
      }
      if (best == 0) break;
      chosen = best;
      chosen_ucb = best_ucb;
      const Node& node = nodes_[best];
      const bool has_scored_child =
          std::any_of(node.children.begin(), node.children.end(),
                      [&](int64_t child) { return nodes_[child].scored; });
      if (static_cast<int>(node.children.size()) + node.pending < kMctsMaxChildren ||
          !has_scored_child) {
        break;
      }
      parent_visits = node.visits;
      level = node.children;
    }
    if (chosen == 0) return 0;
    const Node& node = nodes_[chosen];
    *state = absl::StrCat(
        "{\"parent_score\":", Score(*node.candidate->objective), ",\"visits\":", Score(node.visits),
        ",\"value\":", Score(node.value / node.visits), ",\"ucb\":", Score(chosen_ucb), "}");
    return chosen;
  }

  // A proposal below `id` counts as a visit without reward (a virtual loss), so that the next
  // selection of this step spreads out.
  void AddPending(int64_t id) {
    nodes_[id].pending += 1;
    for (int64_t at = id; at != 0; at = nodes_[at].parent) nodes_[at].visits += 1;
  }

  const SearchCandidate& candidate(int64_t id) { return *nodes_[id].candidate; }

 private:
  struct Node {
    const SearchCandidate* candidate = nullptr;
    int64_t parent = 0;
    std::vector<int64_t> children;
    bool scored = false;
    double reward = 0;
    double visits = 0;
    double value = 0;
    int pending = 0;
  };
  double exploration_;
  std::map<int64_t, Node> nodes_;
  std::vector<int64_t> roots_;
};

}  // namespace

void ApplySearchDefaults(SearchSweep* search) {
  if (search->objective().empty()) search->set_objective("val_loss");
  if (search->goal().empty()) search->set_goal("minimize");
  if (search->operators().empty()) {
    for (const char* name : {"perturb", "crossover", "scale"})
      search->add_operators()->set_name(name);
  }
  for (SearchOperator& op : *search->mutable_operators()) {
    if (op.factor() == 0 && op.name() == "perturb") op.set_factor(kDefaultPerturbFactor);
    if (op.factor() == 0 && op.name() == "scale") op.set_factor(kDefaultScaleFactor);
  }
  if (search->parallel() == 0) search->set_parallel(kDefaultParallel);
  if (search->initial() == 0) {
    search->set_initial(std::max(1, std::min(search->parallel(), search->budget())));
  }
  if (search->seed() == 0) search->set_seed(1);
  if (search->population() == 0) search->set_population(kDefaultPopulation);
  if (search->tournament() == 0) search->set_tournament(kDefaultTournament);
  if (search->exploration() == 0) search->set_exploration(kDefaultExploration);
}

absl::Status ValidateSearchFields(const SearchSweep& search, const std::string& path) {
  auto fail = [&](const std::string& field, const std::string& expected, const std::string& found) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ".", field, ": expected ", expected, ", got ", found));
  };
  if (search.policy() != "greedy" && search.policy() != "mcts" &&
      search.policy() != "evolutionary") {
    return fail("policy", "one of greedy, mcts, evolutionary", Quoted(search.policy()));
  }
  std::set<std::string> names;
  for (int op_idx = 0; op_idx < search.operators_size(); ++op_idx) {
    const SearchOperator& op = search.operators(op_idx);
    const std::string where = absl::StrCat("operators[", op_idx, "]");
    if (op.name() != "perturb" && op.name() != "crossover" && op.name() != "scale") {
      return fail(absl::StrCat(where, ".name"), "one of perturb, crossover, scale",
                  Quoted(op.name()));
    }
    if (!names.insert(op.name()).second) {
      return fail(where, "each operator once", Quoted(op.name()) + " twice");
    }
    if (op.name() == "perturb" && !(op.factor() > 1 && std::isfinite(op.factor()))) {
      return fail(absl::StrCat(where, ".factor"), "a number > 1", Score(op.factor()));
    }
    if (op.name() == "scale" &&
        !(op.factor() > 0 && op.factor() != 1 && std::isfinite(op.factor()))) {
      return fail(absl::StrCat(where, ".factor"), "a positive number other than 1",
                  Score(op.factor()));
    }
    if (op.name() != "scale" && !op.key().empty()) {
      return fail(absl::StrCat(where, ".key"), "no key (only scale takes one)", Quoted(op.key()));
    }
  }
  if (names.size() == 1 && names.count("crossover") > 0) {
    return fail("operators", "perturb or scale besides crossover (crossover needs two scored runs)",
                "crossover alone");
  }
  if (search.goal() != "minimize" && search.goal() != "maximize") {
    return fail("goal", "one of minimize, maximize", Quoted(search.goal()));
  }
  const std::string& objective = search.objective();
  if (absl::StartsWith(objective, "eval:")) {
    const std::string metric = objective.substr(5);
    const size_t at = metric.find('@');
    int k = 0;
    if (metric.empty() || at == 0 ||
        (at != std::string::npos && (!absl::SimpleAtoi(metric.substr(at + 1), &k) || k < 1))) {
      return fail("objective", "a metric name or eval:<metric>[@k] such as eval:pass@1",
                  Quoted(objective));
    }
  } else if (objective.empty() || objective.find_first_of(" \t:@") != std::string::npos) {
    return fail("objective", "a metric name or eval:<metric>[@k] such as eval:pass@1",
                Quoted(objective));
  }
  if (search.budget() < 1 || search.budget() > kMaxSearchBudget) {
    return fail("budget", absl::StrCat("an integer in [1, ", kMaxSearchBudget, "]"),
                absl::StrCat(search.budget()));
  }
  if (search.parallel() < 1)
    return fail("parallel", "an integer >= 1", absl::StrCat(search.parallel()));
  if (search.initial() < 1 || search.initial() > search.budget()) {
    return fail("initial", absl::StrCat("an integer in [1, budget = ", search.budget(), "]"),
                absl::StrCat(search.initial()));
  }
  if (search.population() < 1) {
    return fail("population", "an integer >= 1", absl::StrCat(search.population()));
  }
  if (search.tournament() < 1) {
    return fail("tournament", "an integer >= 1", absl::StrCat(search.tournament()));
  }
  if (!(search.exploration() >= 0) || !std::isfinite(search.exploration())) {
    return fail("exploration", "a number >= 0", Score(search.exploration()));
  }
  return absl::OkStatus();
}

std::vector<SearchProposal> ProposeRuns(const SearchSpace& space, const SearchSweep& spec,
                                        const std::vector<SearchCandidate>& tree, int count,
                                        SearchRng& rng, const std::vector<SearchPoint>& avoid) {
  std::vector<SearchProposal> proposals;
  Proposer proposer(space, spec, tree, rng);
  for (const SearchPoint& point : avoid) proposer.Take(point);
  const bool maximize = spec.goal() == "maximize";
  const std::vector<const SearchCandidate*> ranked = Ranked(tree, maximize);
  std::optional<Mcts> mcts;
  if (spec.policy() == "mcts" && !ranked.empty()) mcts.emplace(tree, maximize, spec.exploration());
  for (int proposal_idx = 0; proposal_idx < count; ++proposal_idx) {
    std::optional<SearchProposal> proposal;
    if (ranked.empty()) {
      proposal = proposer.Fresh([&] { return proposer.Draft(); });
    } else if (spec.policy() == "greedy") {
      proposal = ProposeGreedy(proposer, ranked);
    } else if (spec.policy() == "evolutionary") {
      proposal = ProposeEvolutionary(proposer, spec, ranked);
    } else {
      std::string state;
      const int64_t selected = mcts->Select(&state);
      const SearchCandidate& node = mcts->candidate(selected);
      // Crossover's mate: the best run other than the one selected.
      const SearchCandidate* mate = nullptr;
      for (const SearchCandidate* other : ranked) {
        if (other->run_id != selected) {
          mate = other;
          break;
        }
      }
      proposal = proposer.Fresh([&] {
        SearchProposal made = proposer.Apply(proposer.PickOperator(), node, mate);
        made.policy_state = state;
        return made;
      });
      if (proposal.has_value() && proposal->op != "draft") mcts->AddPending(selected);
    }
    if (!proposal.has_value()) break;  // the space looks exhausted
    proposer.Take(proposal->point);
    proposals.push_back(*std::move(proposal));
  }
  return proposals;
}

}  // namespace scalelab::scheduler
