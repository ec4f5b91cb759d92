// Pipeline manifests: `stage` and `stages` parsed, validated with line numbers, and expanded into
// child runs that inherit their parent's model (ExpandPipeline).
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scheduler/expand.h"
#include "scheduler/manifest.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::v1::SweepSpec;

// Lines 1-14: a pretraining grid of two model sizes and an SFT stage of four points.
constexpr char kHead[] = R"(name: study
project: posttrain
kind: pretrain
stage: pretrain
base:
  model: {d_model: 32, n_layers: 2, n_heads: 2, seq_len: 64}
  data: {sources: {tiny: data/tiny}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}
sweep: {grid: {model.d_model: [32, 64]}}
stages:
  - name: sft
    kind: sft
    base: {sft: {tasks: {generator: addition, digits: 2}}, train: {lr: 1e-3}}
    sweep: {grid: {sft.epochs: [1, 2], sft.unique_examples: [256, 512]}}
)";

// Lines 15-25: GRPO on every SFT run, then an evaluation of every GRPO run.
constexpr char kRlAndEval[] = R"(  - name: grpo
    kind: grpo
    after: sft
    base:
      grpo: {tasks: {generator: addition, digits: 2}, steps: 20}
      train: {lr: 1e-5}
    max_attempts: 2
  - name: eval
    kind: eval
    after: grpo
    base: {eval: {tasks: {tasks: {generator: addition, digits: 2}, samples: 8, k: [1, 8]}}, train: {lr: 1e-5}}
)";

std::string Manifest(const std::string& stages_after_sft) { return kHead + stages_after_sft; }

std::string ErrorOf(const std::string& manifest) {
  absl::StatusOr<SweepSpec> spec = ParseManifest(manifest, "study.yaml");
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(spec.status().message());
}

TEST_CASE("A pretrain -> sft -> grpo -> eval manifest parses with its stages in order",
          "[scheduler][manifest][pipeline]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest(Manifest(kRlAndEval), "study.yaml");
  REQUIRE(spec.ok());
  CHECK(spec->stage() == "pretrain");
  REQUIRE(spec->stages_size() == 3);
  CHECK(spec->stages(0).name() == "sft");
  CHECK(spec->stages(0).kind() == v1::RUN_KIND_SFT);
  CHECK(spec->stages(0).after().empty());
  CHECK(spec->stages(0).sweep().grid().axes_size() == 2);
  CHECK(spec->stages(1).after() == "sft");
  CHECK(spec->stages(1).max_attempts() == 2);
  CHECK(spec->stages(1).base().grpo().steps() == 20);
  CHECK(spec->stages(2).kind() == v1::RUN_KIND_EVAL);
  CHECK(spec->stages(2).base().eval().tasks().samples() == 8);
  // A stage's base keeps only what it says: the model comes from the parent at expansion.
  CHECK_FALSE(spec->stages(0).base().has_model());
}

TEST_CASE("ExpandPipeline gives each parent run its own children, inheriting its model",
          "[scheduler][expand][pipeline]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest(Manifest(kRlAndEval), "study.yaml");
  REQUIRE(spec.ok());
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandPipeline(*spec);
  REQUIRE(runs.ok());
  // 2 pretrain + 2 x 4 sft + 8 grpo + 8 eval.
  REQUIRE(runs->size() == 26);
  for (int run_idx = 0; run_idx < 26; ++run_idx) CHECK((*runs)[run_idx].index == run_idx);
  for (int run_idx : {0, 1}) {
    CHECK((*runs)[run_idx].stage == "pretrain");
    CHECK((*runs)[run_idx].kind == v1::RUN_KIND_PRETRAIN);
    CHECK((*runs)[run_idx].parent_index == -1);
  }
  for (int run_idx = 2; run_idx < 10; ++run_idx) {
    const ExpandedRun& run = (*runs)[run_idx];
    CHECK(run.stage == "sft");
    CHECK(run.kind == v1::RUN_KIND_SFT);
    const int parent = run_idx < 6 ? 0 : 1;
    CHECK(run.parent_index == parent);
    CHECK(run.config.model().d_model() == (parent == 0 ? 32 : 64));
    CHECK(run.config.init().from_run() == 0);  // the store fills in the parent's id
    CHECK(run.config.train().lr() == 1e-3);
    CHECK(run.config.sft().max_example_tokens() == 64);  // defaults saw the inherited seq_len
  }
  // Grid order within one parent: sft.epochs slowest.
  CHECK((*runs)[2].overrides ==
        std::map<std::string, std::string>{{"sft.epochs", "1"}, {"sft.unique_examples", "256"}});
  CHECK((*runs)[5].overrides ==
        std::map<std::string, std::string>{{"sft.epochs", "2"}, {"sft.unique_examples", "512"}});
  for (int run_idx = 10; run_idx < 18; ++run_idx) {
    CHECK((*runs)[run_idx].stage == "grpo");
    CHECK((*runs)[run_idx].kind == v1::RUN_KIND_GRPO);
    CHECK((*runs)[run_idx].parent_index == run_idx - 8);
    CHECK((*runs)[run_idx].overrides.empty());
  }
  CHECK((*runs)[17].config.model().d_model() == 64);  // through sft run 9 from pretrain run 1
  for (int run_idx = 18; run_idx < 26; ++run_idx) {
    CHECK((*runs)[run_idx].stage == "eval");
    CHECK((*runs)[run_idx].parent_index == run_idx - 8);
  }
}

TEST_CASE("The sft-rl-study example parses and expands to 28 runs over four stages",
          "[scheduler][manifest][pipeline]") {
  std::ifstream in(std::string(SCALELAB_SOURCE_DIR) + "/examples/sft-rl-study.yaml");
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<SweepSpec> spec = ParseManifest(text.str(), "sft-rl-study.yaml");
  INFO(spec.status().message());
  REQUIRE(spec.ok());
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandPipeline(*spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 28);  // 1 pretrain, 9 SFT (3 x 3), 9 GRPO, 9 eval
  CHECK((*runs)[1].stage == "sft");
  CHECK((*runs)[1].parent_index == 0);
  CHECK((*runs)[27].stage == "eval");
  CHECK((*runs)[27].parent_index == 18);
}

TEST_CASE("A sweep without stages is one main stage named main", "[scheduler][expand][pipeline]") {
  SweepSpec spec;
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  spec.mutable_base()->mutable_model()->set_d_model(32);
  spec.mutable_base()->mutable_model()->set_n_layers(1);
  spec.mutable_base()->mutable_model()->set_n_heads(1);
  spec.mutable_base()->mutable_model()->set_seq_len(16);
  (*spec.mutable_base()->mutable_data()->mutable_sources())["d"] = "d";
  spec.mutable_base()->mutable_train()->set_tokens(1000);
  spec.mutable_base()->mutable_train()->set_batch_tokens(16);
  spec.mutable_base()->mutable_train()->set_lr(1e-3);
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandPipeline(spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  CHECK((*runs)[0].stage == "main");
  CHECK(MainStageName(spec) == "main");
}

TEST_CASE("Bad stages are refused with the line and path of what is wrong",
          "[scheduler][manifest][pipeline]") {
  SECTION("a stage name used twice") {
    CHECK(ErrorOf(Manifest(R"(  - name: sft
    kind: grpo
    base: {grpo: {tasks: {generator: addition}, steps: 5}, train: {lr: 1e-5}}
)")) == "study.yaml:15: stages[1].name: expected a stage name used once (the main stage is "
        "\"pretrain\"), got \"sft\"");
  }
  SECTION("a stage named as the main stage") {
    CHECK(
        ErrorOf(Manifest(
            R"(  - {name: pretrain, kind: eval, base: {eval: {tasks: {tasks: {generator: sorting}}}}}
)")) == "study.yaml:15: stages[1].name: expected a stage name used once (the main stage is "
        "\"pretrain\"), got \"pretrain\"");
  }
  SECTION("after names a later stage") {
    CHECK(ErrorOf(Manifest(R"(  - name: early
    kind: grpo
    after: late
    base: {grpo: {tasks: {generator: addition}, steps: 5}, train: {lr: 1e-5}}
  - name: late
    kind: grpo
    base: {grpo: {tasks: {generator: addition}, steps: 5}, train: {lr: 1e-5}}
)")) == "study.yaml:17: stages[1].after: expected the main stage or an earlier stage (one of "
        "pretrain, sft), got \"late\"");
  }
  SECTION("a stage after an eval stage, which ends without weights") {
    CHECK(ErrorOf(Manifest(std::string(kRlAndEval) + R"(  - name: more
    kind: grpo
    after: eval
    base: {grpo: {tasks: {generator: addition}, steps: 5}, train: {lr: 1e-5}}
)")) == "study.yaml:28: stages[3].after: expected a stage whose runs end with weights (not an "
        "eval stage), got \"eval\"");
  }
  SECTION("model keys in a stage's base") {
    CHECK(ErrorOf(Manifest(R"(  - name: big
    kind: grpo
    base:
      grpo: {tasks: {generator: addition}, steps: 5}
      model.d_model: 128
)")) == "study.yaml:19: stages[1].base.model: expected no model keys in a stage (the parent's "
        "model is inherited), got some");
  }
  SECTION("model keys in a stage's grid") {
    CHECK(ErrorOf(Manifest(R"(  - name: wide
    kind: grpo
    base: {grpo: {tasks: {generator: addition}, steps: 5}, train: {lr: 1e-5}}
    sweep:
      grid:
        grpo.steps: [5, 10]
        model.n_layers: [2, 4]
)")) == "study.yaml:21: stages[1].sweep.grid.\"model.n_layers\": expected no model keys in a "
        "stage's grid, got \"model.n_layers\"");
  }
  SECTION("init keys in a stage's base") {
    CHECK(ErrorOf(Manifest(R"(  - name: elsewhere
    kind: grpo
    base:
      grpo: {tasks: {generator: addition}, steps: 5}
      init: {from_run: 7}
)")) == "study.yaml:19: stages[1].base.init: expected no init keys in a stage (each run starts "
        "from its parent), got some");
  }
  SECTION("a stage without a kind") {
    CHECK(ErrorOf(Manifest(R"(  - name: nokind
    base: {grpo: {steps: 5}, train: {lr: 1e-5}}
)")) == "study.yaml:15: stages[1].kind: expected one of pretrain, sft, grpo, eval, got none");
  }
  SECTION("an unknown kind") {
    CHECK(ErrorOf(Manifest(R"(  - name: odd
    kind: dpo
)")) == "study.yaml:16: stages[1].kind: expected one of pretrain, sft, grpo, eval, got \"dpo\"");
  }
  SECTION("an unknown key in a stage") {
    CHECK(ErrorOf(Manifest(R"(  - name: odd
    kind: grpo
    parent: sft
)")) == "study.yaml:17: stages[1]: expected one of the keys name, kind, after, base, sweep, "
        "max_attempts, got \"parent\"");
  }
  SECTION("a bad grid value of a stage, by its kind's rules") {
    CHECK(ErrorOf(Manifest(R"(  - name: rl
    kind: grpo
    base: {grpo: {tasks: {generator: addition}}, train: {lr: 1e-5}}
    sweep:
      grid:
        grpo.steps: [10, -3]
)")) == "study.yaml:20: stages[1].sweep.grid.\"grpo.steps\": expected each value to be a "
        "positive integer, got \"-3\"");
  }
  SECTION("a stage missing what its kind needs") {
    const std::string error = ErrorOf(Manifest(R"(  - name: judge
    kind: eval
    base: {eval: {tasks: {samples: 4}}, train: {lr: 1e-5}}
)"));
    CHECK(error.rfind("study.yaml:17: stages[1].base.eval.tasks", 0) == 0);
  }
  SECTION("a stage's max_attempts out of range") {
    CHECK(ErrorOf(Manifest(R"(  - name: rl
    kind: grpo
    base: {grpo: {tasks: {generator: addition}, steps: 5}, train: {lr: 1e-5}}
    max_attempts: 0
)")) == "study.yaml:18: stages[1].max_attempts: expected an integer in [1, 100], got \"0\"");
  }
  SECTION("stages that are not a list") {
    CHECK(ErrorOf(std::string(kHead).substr(0, std::string(kHead).find("stages:")) +
                  "stages: {name: sft}\n") ==
          "study.yaml:10: stages: expected a list of stages, each a map with the keys name, "
          "kind, ..., got a map");
  }
  SECTION("a pipeline larger than a sweep may be") {
    const std::string error = ErrorOf(Manifest(R"(  - name: many
    kind: grpo
    after: sft
    base: {grpo: {tasks: {generator: addition}}, train: {lr: 1e-5}}
    sweep:
      grid:
        grpo.steps: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50]
        grpo.group_size: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]
)"));
    CHECK(error.rfind("study.yaml:20: stages[1] (many): expected at most 10000 runs in the whole "
                      "pipeline",
                      0) == 0);
  }
}

TEST_CASE("A spec submitted as a proto gets the same stage rules, without line numbers",
          "[scheduler][manifest][pipeline]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest(Manifest(""), "study.yaml");
  REQUIRE(spec.ok());
  v1::StageSpec& stage = *spec->mutable_stages(0);
  stage.mutable_base()->mutable_model()->set_n_layers(8);
  absl::Status status = ValidateSweepSpec(*spec);
  CHECK(status.message() ==
        "stages[0].base.model: expected no model keys in a stage (the parent's model is "
        "inherited), got some");
  stage.mutable_base()->clear_model();
  stage.set_after("nowhere");
  CHECK(ValidateSweepSpec(*spec).message() ==
        "stages[0].after: expected the main stage or an earlier stage (one of pretrain), got "
        "\"nowhere\"");
  stage.clear_after();
  CHECK(ValidateSweepSpec(*spec).ok());
}

}  // namespace
}  // namespace scalelab::scheduler
