// Manifests of random and search sweeps: the YAML syntax, the drafts made at submission, and
// errors that name the file, line and field.
#include <catch2/catch.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "scheduler/expand.h"
#include "scheduler/manifest.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::v1::SweepSpec;

constexpr char kSearch[] = R"(name: lr-search
project: search
kind: pretrain
base:
  model: {d_model: 32, n_layers: 2, n_heads: 2, seq_len: 64}
  data: {sources: {tiny: data/tiny}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}
sweep:
  search:
    policy: mcts
    space:
      train.lr: {low: 1e-4, high: 1e-2, log: true}
      model.d_model: {low: 32, high: 128, step: 32}
      train.schedule: [cosine, wsd]
    operators: [perturb, {name: scale, factor: 2, key: model.d_model}, crossover]
    objective: val_loss
    budget: 6
    parallel: 2
    initial: 3
    seed: 11
)";

constexpr char kRandom[] = R"(name: lr-random
project: search
kind: pretrain
base:
  model: {d_model: 32, n_layers: 2, n_heads: 2, seq_len: 64}
  data: {sources: {tiny: data/tiny}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}
sweep:
  random:
    runs: 5
    seed: 4
    space:
      train.lr: {low: 1e-4, high: 1e-2, log: true}
      model.n_layers: {low: 1, high: 4, integer: true}
)";

std::string Error(const std::string& yaml) {
  auto spec = ParseManifest(yaml, "s.yaml");
  REQUIRE(!spec.ok());
  return std::string(spec.status().message());
}

TEST_CASE("A search manifest parses with its defaults and expands to its initial drafts",
          "[scheduler][manifest][search]") {
  auto spec = ParseManifest(kSearch, "s.yaml");
  REQUIRE(spec.ok());
  const v1::SearchSweep& search = spec->sweep().search();
  CHECK(search.policy() == "mcts");
  CHECK(search.goal() == "minimize");
  REQUIRE(search.operators_size() == 3);
  CHECK(search.operators(0).factor() == 1.25);  // the default perturb factor
  CHECK(search.operators(1).key() == "model.d_model");
  CHECK(search.dimensions(1).step() == 32);
  auto runs = ExpandPipeline(*spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 3);
  for (const ExpandedRun& run : *runs) {
    CHECK(run.search_operator == "draft");
    CHECK(run.overrides.size() == 3);
    double lr = 0;
    REQUIRE(absl::SimpleAtod(run.overrides.at("train.lr"), &lr));
    CHECK((lr >= 1e-4 && lr <= 1e-2));
    CHECK(run.config.train().lr() == lr);
  }
}

TEST_CASE("The lr-search example parses to an MCTS search of twelve runs with three drafts",
          "[scheduler][manifest][search]") {
  std::ifstream in(std::string(SCALELAB_SOURCE_DIR) + "/examples/lr-search.yaml");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  auto spec = ParseManifest(text.str(), "lr-search.yaml");
  REQUIRE(spec.ok());
  CHECK(spec->sweep().search().budget() == 12);
  auto runs = ExpandPipeline(*spec);
  REQUIRE(runs.ok());
  CHECK(runs->size() == 3);
}

TEST_CASE("A random sweep expands reproducibly to distinct valid runs",
          "[scheduler][manifest][search]") {
  auto spec = ParseManifest(kRandom, "r.yaml");
  REQUIRE(spec.ok());
  auto first = ExpandSweep(*spec);
  auto again = ExpandSweep(*spec);
  REQUIRE(first.ok());
  REQUIRE(again.ok());
  REQUIRE(first->size() == 5);
  std::set<std::map<std::string, std::string>> points;
  for (size_t idx = 0; idx < first->size(); ++idx) {
    CHECK((*first)[idx].overrides == (*again)[idx].overrides);
    CHECK((*first)[idx].index == static_cast<int>(idx));
    CHECK(points.insert((*first)[idx].overrides).second);
  }
  SweepSpec reseeded = *spec;
  reseeded.mutable_sweep()->mutable_random()->set_seed(5);
  auto other = ExpandSweep(reseeded);
  REQUIRE(other.ok());
  CHECK((*other)[0].overrides != (*first)[0].overrides);
}

TEST_CASE("Search manifest errors name the file, line and field", "[scheduler][manifest][search]") {
  const std::string search = kSearch;
  CHECK(Error(absl::StrReplaceAll(search, {{"policy: mcts", "policy: annealing"}})) ==
        "s.yaml:10: sweep.search.policy: expected one of greedy, mcts, evolutionary, got "
        "\"annealing\"");
  CHECK(Error(absl::StrReplaceAll(search, {{"budget: 6", "budget: 0"}})) ==
        "s.yaml:17: sweep.search.budget: expected an integer in [1, 10000], got 0");
  CHECK(Error(absl::StrReplaceAll(search, {{"initial: 3", "initial: 7"}})) ==
        "s.yaml:19: sweep.search.initial: expected an integer in [1, budget = 6], got 7");
  CHECK(Error(absl::StrReplaceAll(search,
                                  {{"{name: scale, factor: 2", "{name: scale, factor: 1"}})) ==
        "s.yaml:15: sweep.search.operators[1].factor: expected a positive number other than 1, got "
        "1");
  CHECK(Error(absl::StrReplaceAll(
            search, {{"train.schedule: [cosine, wsd]", "train.schedule: [cosine, sometimes]"}})) ==
        "s.yaml:14: sweep.search.space.\"train.schedule\": expected each value to be "
        "\"cosine\", \"constant\" or \"wsd\", got \"sometimes\"");
  // A range end that breaks a one-field rule is caught before any run is made.
  CHECK(Error(absl::StrReplaceAll(search, {{"{low: 32, high: 128", "{low: 0, high: 128"}}))
            .rfind("s.yaml:13: sweep.search.space.\"model.d_model\"", 0) == 0);
  CHECK(Error(absl::StrReplaceAll(search, {{"low: 1e-4, high", "lo: 1e-4, high"}})) ==
        "s.yaml:12: sweep.search.space.\"train.lr\": expected one of the keys low, high, log, "
        "integer, step, got \"lo\"");
  CHECK(Error(absl::StrReplaceAll(search, {{"    budget: 6\n", ""}})) ==
        "s.yaml:10: sweep.search: expected the key budget, got none");
  CHECK(Error(absl::StrReplaceAll(search, {{"objective: val_loss", "objective: eval:pass@x"}})) ==
        "s.yaml:16: sweep.search.objective: expected a metric name or eval:<metric>[@k] such as "
        "eval:pass@1, got \"eval:pass@x\"");
}

TEST_CASE("A space whose runs cannot pass validation is refused at submission",
          "[scheduler][manifest][search]") {
  // d_model from 33 to 35: never a multiple of n_heads (2) except 34, never of 4 heads.
  std::string random =
      absl::StrReplaceAll(kRandom, {{"model.n_layers: {low: 1, high: 4, integer: true}",
                                     "model.d_model: {low: 33, high: 35, integer: true}"},
                                    {"n_heads: 2", "n_heads: 4"}});
  const std::string message = Error(random);
  CHECK(message.find("sweep.random.space: expected 5 distinct points whose runs pass "
                     "validation, got 0") != std::string::npos);
  CHECK(message.find("multiple of model.n_heads") != std::string::npos);
}

}  // namespace
}  // namespace scalelab::scheduler
