// A post-training pipeline end to end, as one manifest through the real scheduler, store and
// worker: pretraining on the test corpus, SFT of its weights on modular arithmetic, GRPO from
// the SFT run's final weights, and an evaluation of the GRPO run. Asserts the links between the
// stages and that GRPO raises pass@1 on the test split over the SFT model it started from.
#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

bool AllTerminal(const std::vector<v1::Run>& runs) {
  if (runs.empty()) return false;
  for (const v1::Run& run : runs) {
    if (run.state() != v1::RUN_STATE_SUCCEEDED && run.state() != v1::RUN_STATE_FAILED &&
        run.state() != v1::RUN_STATE_CANCELLED) {
      return false;
    }
  }
  return true;
}

std::vector<v1::EvalResult> Evals(Stack& stack, int64_t run_id) {
  v1::GetEvalsRequest request;
  request.set_run_id(run_id);
  v1::GetEvalsResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.results().GetEvals(&context, request, &response);
  if (!status.ok()) FAIL("GetEvals: " << status.error_message());
  return {response.evals().begin(), response.evals().end()};
}

// pass@1 of the whole test split at the run's last evaluated step (-1 when none).
double FinalPassAt1(const std::vector<v1::EvalResult>& evals) {
  int64_t step = -1;
  double value = -1;
  for (const v1::EvalResult& eval : evals) {
    if (eval.metric() != "pass@k" || eval.k() != 1 || eval.split() != "test" ||
        !eval.category().empty() || eval.step() < step) {
      continue;
    }
    step = eval.step();
    value = eval.value();
  }
  return value;
}

// The task: "a*b mod 3=" (or + or -) with one-digit operands, answers 0, 1 or 2. The stages
// share one evaluation: 64 test problems, 4 samples each at temperature 1.
constexpr char kPipeline[] = R"(name: pipeline
project: integration
kind: pretrain
stage: pretrain
base:
  model: {family: transformer, d_model: 64, n_layers: 2, n_heads: 4, seq_len: 16}
  data: {sources: {text: data/text}}
  train: {tokens: 3e4, batch_tokens: 1024, lr: 1e-2, schedule: cosine, warmup: 0.05, seed: 3}
  eval: {every_tokens: 1.5e4, val_tokens: 4096}
  resources: {cpus: 1}
fit: {law: none}
stages:
  - name: sft
    kind: sft
    base:
      sft: {tasks: {generator: modular, modulus: 3, operand_digits: 1}, unique_examples: 2048,
            epochs: 1, batch_examples: 32, held_out_examples: 64}
      train: {lr: 3e-3, schedule: constant, seed: 5}
      eval: {tasks: {problems: 64, samples: 4, k: [1, 4], max_new_tokens: 4}}
      resources: {cpus: 1}
  - name: grpo
    kind: grpo
    after: sft
    base:
      grpo: {tasks: {generator: modular, modulus: 3, operand_digits: 1}, steps: 40,
             prompts_per_step: 8, group_size: 8, max_new_tokens: 4, probe_problems: 16}
      train: {lr: 3e-3, schedule: constant, seed: 7}
      eval: {tasks: {problems: 64, samples: 4, k: [1, 4], max_new_tokens: 4, every_steps: 20}}
      resources: {cpus: 1}
  - name: eval
    kind: eval
    after: grpo
    base:
      eval: {tasks: {tasks: {generator: modular, modulus: 3, operand_digits: 1}, problems: 64,
                     samples: 4, k: [1, 4], max_new_tokens: 4}}
      train: {seed: 9}
      resources: {cpus: 1}
)";

TEST_CASE("A pretrain -> SFT -> GRPO -> eval pipeline runs as one sweep and GRPO raises pass@1",
          "[integration][slow]") {
  Stack stack;
  stack.StartWorker(/*slots=*/1);
  const int64_t sweep_id = stack.Submit(kPipeline).sweep().id();
  const std::vector<v1::Run> runs = stack.WaitForRuns(sweep_id, AllTerminal, 540);
  REQUIRE(runs.size() == 4);
  std::map<std::string, v1::Run> by_stage;
  for (const v1::Run& run : runs) {
    INFO("run " << run.id() << " (" << run.stage() << "): " << run.message());
    CHECK(run.state() == v1::RUN_STATE_SUCCEEDED);
    by_stage[run.stage()] = run;
  }
  REQUIRE(by_stage.size() == 4);
  const v1::Run& pretrain = by_stage["pretrain"];
  const v1::Run& sft = by_stage["sft"];
  const v1::Run& grpo = by_stage["grpo"];
  const v1::Run& eval = by_stage["eval"];
  CHECK(pretrain.kind() == v1::RUN_KIND_PRETRAIN);
  CHECK(sft.kind() == v1::RUN_KIND_SFT);
  CHECK(grpo.kind() == v1::RUN_KIND_GRPO);
  CHECK(eval.kind() == v1::RUN_KIND_EVAL);
  CHECK(pretrain.parent_run_id() == 0);
  CHECK(sft.parent_run_id() == pretrain.id());
  CHECK(grpo.parent_run_id() == sft.id());
  CHECK(eval.parent_run_id() == grpo.id());
  CHECK(sft.config().init().from_run() == pretrain.id());
  CHECK(grpo.config().init().from_run() == sft.id());

  const double after_sft = FinalPassAt1(Evals(stack, sft.id()));
  const double after_grpo = FinalPassAt1(Evals(stack, grpo.id()));
  const double evaluated = FinalPassAt1(Evals(stack, eval.id()));
  WARN("pass@1 on the test split: after SFT " << after_sft << ", after GRPO " << after_grpo
                                              << ", eval run " << evaluated);
  REQUIRE(after_sft >= 0);
  REQUIRE(after_grpo >= 0);
  CHECK(after_grpo >= after_sft + 0.10);
  // The eval run scores the GRPO run's final weights on the same problems (other samples).
  CHECK(evaluated > after_sft);
}

}  // namespace
}  // namespace scalelab::testing
