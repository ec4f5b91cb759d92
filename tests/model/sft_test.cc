// Supervised fine-tuning: the examples and their layout (model/sft_data.h), the response-only
// loss (model/sft_loss.h), and kind SFT and kind EVAL runs through Train() and scalelab-train.

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/causal_lm.h"
#include "model/registry.h"
#include "model/sft_data.h"
#include "model/sft_loss.h"
#include "model/spec_loader.h"
#include "model/task_eval.h"
#include "model/task_set.h"
#include "model/trainer.h"
#include "runspec/exit_codes.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::TempDir;

SftExample Example(const std::string& prompt, const std::string& response) {
  SftExample example;
  example.tokens = EncodeBytes(prompt + response);
  example.prompt_tokens = static_cast<int64_t>(prompt.size());
  return example;
}

TaskSet Addition(int digits = 2) {
  v1::TaskSetSpec spec;
  spec.set_generator("addition");
  spec.set_digits(digits);
  absl::StatusOr<TaskSet> set = TaskSet::Open(spec);
  REQUIRE(set.ok());
  return *std::move(set);
}

std::shared_ptr<CausalLM> TinyModel() {
  v1::ModelSpec spec;
  spec.set_family("transformer");
  spec.set_d_model(32);
  spec.set_n_layers(1);
  spec.set_n_heads(2);
  spec.set_seq_len(32);
  spec.set_vocab_size(256);
  spec.set_rope_theta(10000);
  torch::manual_seed(0);
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
  REQUIRE(model.ok());
  return *model;
}

TEST_CASE("A padded batch counts only response targets and pads to its longest example",
          "[model][sft]") {
  const std::vector<SftExample> examples = {Example("12+3=", "15\n"), Example("1+1=", "2\n")};
  const std::vector<int64_t> order = {0, 1};
  const SftRows rows = LayOutSftBatch(examples, order, 32, /*pack=*/false);
  REQUIRE(rows.rows == 2);
  CHECK(rows.width == 7);  // 8 tokens: 7 inputs
  CHECK(rows.tokens == 8 + 6);
  CHECK(rows.loss_tokens == 3 + 2);
  // Row 0: inputs "12+3=15", targets: ignored until '=' predicts '1'.
  const std::vector<int64_t> row0_targets(rows.targets.begin(), rows.targets.begin() + 7);
  CHECK(row0_targets == std::vector<int64_t>{kIgnoreTarget, kIgnoreTarget, kIgnoreTarget,
                                             kIgnoreTarget, '1', '5', '\n'});
  CHECK(DecodeBytes(std::vector<int64_t>(rows.inputs.begin(), rows.inputs.begin() + 7)) ==
        "12+3=15");
  // Row 1: "1+1=2" then padding, whose targets never count.
  const std::vector<int64_t> row1_targets(rows.targets.begin() + 7, rows.targets.end());
  CHECK(row1_targets == std::vector<int64_t>{kIgnoreTarget, kIgnoreTarget, kIgnoreTarget, '2', '\n',
                                             kIgnoreTarget, kIgnoreTarget});
}

TEST_CASE("Packing puts whole examples into rows of seq_len and masks their boundaries",
          "[model][sft]") {
  const std::vector<SftExample> examples = {Example("12+3=", "15\n"), Example("1+1=", "2\n"),
                                            Example("9+9=", "18\n")};
  const std::vector<int64_t> order = {0, 1, 2, 1};
  // seq_len 16: a row holds 17 tokens; 8 + 6 fit, + 7 does not.
  const SftRows packed = LayOutSftBatch(examples, order, 16, /*pack=*/true);
  const SftRows padded = LayOutSftBatch(examples, order, 16, /*pack=*/false);
  CHECK(packed.rows == 2);
  CHECK(packed.width == 13);  // rows of 8 + 6 and 7 + 6 tokens: the first is 14 - 1 wide
  CHECK(packed.loss_tokens == padded.loss_tokens);
  CHECK(packed.tokens == padded.tokens);
  // The first row reads "12+3=15\n1+1=2" and counts only the two responses: the target of the
  // boundary "\n" -> "1" is the second prompt's first token.
  CHECK(DecodeBytes(std::vector<int64_t>(packed.inputs.begin(), packed.inputs.begin() + 13)) ==
        "12+3=15\n1+1=2");
  std::multiset<int64_t> packed_targets;
  std::multiset<int64_t> padded_targets;
  for (int64_t target : packed.targets) {
    if (target != kIgnoreTarget) packed_targets.insert(target);
  }
  for (int64_t target : padded.targets) {
    if (target != kIgnoreTarget) padded_targets.insert(target);
  }
  CHECK(packed_targets == padded_targets);
  CHECK(packed.targets[7] == kIgnoreTarget);  // input "\n", target "1" of the next prompt
}

TEST_CASE("The loss ignores what the model predicts at prompt and padding positions",
          "[model][sft]") {
  std::shared_ptr<CausalLM> model = TinyModel();
  torch::NoGradGuard no_grad;
  const std::vector<SftExample> examples = {Example("12+3=", "15\n"), Example("1+1=", "2\n")};
  const SftRows rows = LayOutSftBatch(examples, std::vector<int64_t>{0, 1}, 32, false);
  const SftTensors tensors = ToTensors(rows, torch::kCPU);
  const torch::Tensor logits = model->forward(tensors.inputs);
  const double loss = MaskedCrossEntropySum(logits, tensors.targets).item<double>();

  // Scrambling the logits wherever the target is ignored changes nothing.
  const torch::Tensor ignored = tensors.targets.eq(kIgnoreTarget).unsqueeze(-1);
  const torch::Tensor scrambled = torch::where(ignored, torch::randn_like(logits) * 50, logits);
  CHECK(MaskedCrossEntropySum(scrambled, tensors.targets).item<double>() == Approx(loss));

  // The same sum by hand over the response positions.
  const torch::Tensor log_probs = torch::log_softmax(logits, -1);
  double by_hand = 0;
  for (int64_t row = 0; row < rows.rows; ++row) {
    for (int64_t pos = 0; pos < rows.width; ++pos) {
      const int64_t target = rows.targets[static_cast<size_t>(row * rows.width + pos)];
      if (target != kIgnoreTarget) by_hand -= log_probs[row][pos][target].item<double>();
    }
  }
  CHECK(loss == Approx(by_hand));

  // A padded batch sums to the examples' losses alone (causal attention: padding comes after).
  double alone = 0;
  for (int64_t index : {0, 1}) {
    const SftRows one = LayOutSftBatch(examples, std::vector<int64_t>{index}, 32, false);
    const SftTensors one_tensors = ToTensors(one, torch::kCPU);
    alone += MaskedCrossEntropySum(model->forward(one_tensors.inputs), one_tensors.targets)
                 .item<double>();
  }
  CHECK(loss == Approx(alone).epsilon(1e-5));
}

TEST_CASE("Epoch order sees unique x epochs examples, each whole epoch a permutation",
          "[model][sft]") {
  const std::vector<int64_t> order = SftExampleOrder(10, 2.5, 7);
  REQUIRE(order.size() == 25);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::set<int64_t> seen(order.begin() + epoch * 10, order.begin() + epoch * 10 + 10);
    CHECK(seen.size() == 10);
  }
  std::map<int64_t, int> counts;
  for (int64_t index : order) ++counts[index];
  CHECK(counts.size() == 10);
  int thrice = 0;
  for (const auto& [index, count] : counts) {
    CHECK((count == 2 || count == 3));
    thrice += count == 3;
  }
  CHECK(thrice == 5);
  CHECK(std::vector<int64_t>(order.begin(), order.begin() + 10) !=
        std::vector<int64_t>(order.begin() + 10, order.begin() + 20));  // reshuffled
  CHECK(SftExampleOrder(10, 2.5, 7) == order);
  CHECK(SftExampleOrder(10, 2.5, 8) != order);
  CHECK(SftExampleOrder(10, 0.25, 7).size() == 3);  // round(2.5)
  CHECK(SftExampleOrder(4, 0.1, 7).empty());
}

TEST_CASE("Examples come from their split and the length filter drops and counts", "[model][sft]") {
  const TaskSet set = Addition();
  absl::StatusOr<SftExampleSet> train =
      BuildSftExamples(set, tasks::Split::kTrain, 200, false, 0, 32);
  absl::StatusOr<SftExampleSet> held_out =
      BuildSftExamples(set, tasks::Split::kHeldOut, 50, false, 0, 32);
  REQUIRE(train.ok());
  REQUIRE(held_out.ok());
  CHECK(train->examples.size() == 200);
  CHECK(held_out->examples.size() == 50);
  std::set<std::string> train_prompts;
  for (const SftExample& example : train->examples) {
    train_prompts.insert(DecodeBytes(std::vector<int64_t>(
        example.tokens.begin(), example.tokens.begin() + example.prompt_tokens)));
    CHECK(example.tokens.back() == '\n');
  }
  for (const SftExample& example : held_out->examples) {
    const std::string prompt = DecodeBytes(std::vector<int64_t>(
        example.tokens.begin(), example.tokens.begin() + example.prompt_tokens));
    CHECK(train_prompts.count(prompt) == 0);
    CHECK(tasks::SplitOfQuestion(prompt) == tasks::Split::kHeldOut);
  }
  // "ab+cd=" and a 2- or 3-digit sum with "\n": 9 or 10 tokens.
  absl::StatusOr<SftExampleSet> filtered =
      BuildSftExamples(set, tasks::Split::kTrain, 200, false, 10, 10);
  REQUIRE(filtered.ok());
  CHECK(filtered->dropped_long == 0);
  CHECK(filtered->dropped_short > 0);
  CHECK(filtered->examples.size() + filtered->dropped_short == 200);
  for (const SftExample& example : filtered->examples) CHECK(example.tokens.size() == 10);
}

TEST_CASE("The generalization loss is the token mean over held-out responses", "[model][sft]") {
  std::shared_ptr<CausalLM> model = TinyModel();
  const std::vector<SftExample> examples = {Example("12+3=", "15\n"), Example("1+1=", "2\n"),
                                            Example("9+9=", "18\n")};
  // Chunking changes nothing: the mean is over tokens, not over chunks.
  const double whole = MeanResponseLoss(*model, examples, 3, 32, torch::kCPU);
  const double chunked = MeanResponseLoss(*model, examples, 2, 32, torch::kCPU);
  CHECK(whole == Approx(chunked).epsilon(1e-6));
  CHECK(whole == Approx(std::log(256.0)).margin(1.0));  // untrained: near uniform
  CHECK(model->is_training());
}

// A kind SFT run on 2-digit addition small enough for CPU tests.
std::string SftSpecYaml(const std::string& output_dir) {
  return absl::StrCat(R"(kind: RUN_KIND_SFT
output_dir: ")",
                      output_dir, R"("
config:
  model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 32}
  train: {lr: 3e-3, warmup: 0.05, seed: 1}
  sft:
    tasks: {generator: addition, digits: 2}
    unique_examples: 4000
    epochs: 1
    batch_examples: 32
    held_out_examples: 64
    eval_every_steps: 50
  eval:
    tasks: {problems: 64, samples: 1, greedy: true, max_new_tokens: 6}
)");
}

v1::RunSpec LoadSpec(const TempDir& dir, const std::string& yaml,
                     std::vector<std::string> sets = {}) {
  SpecOverrides overrides;
  overrides.set = std::move(sets);
  absl::StatusOr<v1::RunSpec> spec = LoadRunSpec(dir.Write("spec.yaml", yaml), overrides);
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

double PassAt1(const VectorMetricSink& sink, int64_t step) {
  for (const v1::EvalResult& result : sink.evals()) {
    if (result.step() == step && result.k() == 1 && result.category().empty()) {
      return result.value();
    }
  }
  FAIL("no pass@1 at step " << step);
  return -1;
}

TEST_CASE("SFT on addition lifts pass@1 clear of the untrained model's and saves its weights",
          "[model][sft][slow]") {
  TempDir dir;
  // 625 steps of 64 examples at lr 2e-2: the smallest budget found that lifts greedy pass@1 on
  // 128 test problems well clear of 0 (0.117 measured; 0.0625 after 313 steps at 1e-2, 0 after
  // 125 steps at 3e-3).
  const v1::RunSpec spec =
      LoadSpec(dir, SftSpecYaml(dir.path() + "/out"),
               {"train.lr=2e-2", "sft.unique_examples=40000", "sft.batch_examples=64",
                "sft.eval_every_steps=250", "eval.tasks.problems=128"});
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(spec, sink);
  INFO(summary.status().ToString());
  REQUIRE(summary.ok());
  CHECK(summary->steps == 625);  // 40000 examples / 64
  CHECK(summary->final_weights == dir.path() + "/out/final.pt");
  REQUIRE(sink.artifacts().size() == 1);
  CHECK(sink.artifacts().front().kind == "final");

  // The untrained model of the same seed, evaluated the same way.
  {
    torch::manual_seed(static_cast<uint64_t>(spec.config().train().seed()));
    absl::StatusOr<std::shared_ptr<CausalLM>> untrained = BuildModel(spec.config().model());
    REQUIRE(untrained.ok());
    absl::StatusOr<TaskSet> tasks = TaskSet::Open(spec.config().sft().tasks());
    REQUIRE(tasks.ok());
    VectorMetricSink before;
    REQUIRE(EvaluateTasks(**untrained, spec.config().eval().tasks(), &*tasks, 0, 1, before).ok());
    const double untrained_pass = PassAt1(before, 0);
    const double trained_pass = PassAt1(sink, 625);
    WARN("greedy pass@1 on 128 test problems: untrained " << untrained_pass << ", after SFT "
                                                          << trained_pass);
    CHECK(untrained_pass < 0.02);
    CHECK(trained_pass > 0.08);
    // Above the untrained value even at the low end of its bootstrap interval.
    for (const v1::EvalResult& result : sink.evals()) {
      if (result.step() == 625) CHECK(result.low() > untrained_pass);
    }
  }

  const std::vector<double> gen_loss = sink.Values("gen_loss");
  REQUIRE(gen_loss.size() == 4);  // step 0, 250, 500, 625
  CHECK(gen_loss.back() < 0.5 * gen_loss.front());
  const std::vector<double> train_loss = sink.Values("train_loss");
  CHECK(train_loss.size() == 105);  // every 6th step (625 / 100) and the last
  CHECK(train_loss.back() < 0.5 * train_loss.front());
  // Metric.tokens counts example tokens: 9 or 10 per example.
  const Metric& last = sink.metrics().back();
  CHECK(last.tokens >= 40000 * 9);
  CHECK(last.tokens <= 40000 * 10);
  REQUIRE(sink.records().size() == 2);
  CHECK(sink.records().back().tokens() == last.tokens);

  SECTION("kind EVAL scores the saved weights with the same pass@1") {
    const std::string eval_yaml = absl::StrCat(R"(kind: RUN_KIND_EVAL
init_artifact: {location: ")",
                                               summary->final_weights, R"("}
config:
  model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 32}
  train: {lr: 3e-3}
  init: {from_run: 1}
  eval:
    tasks: {tasks: {generator: addition, digits: 2}, problems: 128, samples: 1, greedy: true,
            max_new_tokens: 6}
)");
    VectorMetricSink eval_sink;
    absl::StatusOr<TrainSummary> evaluated = Train(LoadSpec(dir, eval_yaml), eval_sink);
    INFO(evaluated.status().ToString());
    REQUIRE(evaluated.ok());
    CHECK(PassAt1(eval_sink, 0) == PassAt1(sink, 625));
    REQUIRE(eval_sink.Values("gen_loss").size() == 1);
    CHECK(eval_sink.Values("gen_loss")[0] < 0.5 * gen_loss.front());
    CHECK(eval_sink.artifacts().empty());
  }
}

TEST_CASE("An SFT run whose length filter leaves nothing fails naming the fields", "[model][sft]") {
  TempDir dir;
  const v1::RunSpec spec =
      LoadSpec(dir, SftSpecYaml(""), {"sft.min_example_tokens=20", "sft.max_example_tokens=30"});
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(spec, sink);
  REQUIRE(absl::IsInvalidArgument(summary.status()));
  CHECK(runspec::ExitCodeForStatus(summary.status()) == runspec::kExitInvalidSpec);
  CHECK_THAT(std::string(summary.status().message()), Catch::Contains("sft.min_example_tokens") &&
                                                          Catch::Contains("4000 train") &&
                                                          Catch::Contains("4000 shorter"));
}

TEST_CASE("Fractional epochs and packing set the steps; the same seed repeats the run",
          "[model][sft]") {
  TempDir dir;
  const std::vector<std::string> small = {"sft.unique_examples=60",   "sft.epochs=1.5",
                                          "sft.batch_examples=16",    "sft.pack=true",
                                          "sft.held_out_examples=16", "sft.eval_every_steps=0",
                                          "eval.tasks.problems=4"};
  const v1::RunSpec spec = LoadSpec(dir, SftSpecYaml(""), small);
  VectorMetricSink first;
  absl::StatusOr<TrainSummary> summary = Train(spec, first);
  INFO(summary.status().ToString());
  REQUIRE(summary.ok());
  CHECK(summary->steps == 6);                   // 90 examples in batches of 16
  CHECK(first.Values("gen_loss").size() == 2);  // step 0 and the end
  CHECK(first.evals().size() == 1);             // the end only: no init weights, no cadence
  VectorMetricSink second;
  REQUIRE(Train(spec, second).ok());
  CHECK(first.Values("train_loss") == second.Values("train_loss"));
  CHECK(first.Values("gen_loss") == second.Values("gen_loss"));
}

TEST_CASE("A resumed SFT run continues from its checkpoint as if never stopped", "[model][sft]") {
  TempDir dir;
  v1::RunSpec spec =
      LoadSpec(dir, SftSpecYaml(""),
               {"sft.unique_examples=60", "sft.epochs=1.5", "sft.batch_examples=16",
                "sft.held_out_examples=16", "sft.eval_every_steps=0", "eval.tasks.problems=4",
                "checkpoint.every_steps=2", "checkpoint.keep=5"});
  spec.set_checkpoint_dir(dir.path() + "/ckpt");
  VectorMetricSink whole;
  REQUIRE(Train(spec, whole).ok());
  // Checkpoints at steps 2 and 4 (the last step is final.pt's); drop the newer one.
  REQUIRE(std::filesystem::exists(dir.path() + "/ckpt/ckpt-4.pt"));
  std::filesystem::remove(dir.path() + "/ckpt/ckpt-4.pt");
  VectorMetricSink resumed;
  absl::StatusOr<TrainSummary> summary = Train(spec, resumed);
  INFO(summary.status().ToString());
  REQUIRE(summary.ok());
  const std::vector<double> all = whole.Values("train_loss");
  REQUIRE(all.size() == 6);
  CHECK(resumed.Values("train_loss") == std::vector<double>(all.begin() + 2, all.end()));
  CHECK(resumed.Values("gen_loss") == std::vector<double>{whole.Values("gen_loss").back()});
  CHECK(resumed.metrics().front().step == 3);
  CHECK(resumed.metrics().back().tokens == whole.metrics().back().tokens);
}

#ifdef SCALELAB_TRAIN_BINARY
TEST_CASE("scalelab-train runs a kind SFT spec and prints its metrics and results",
          "[model][sft]") {
  TempDir dir;
  const std::string spec_path = dir.Write("spec.yaml", SftSpecYaml(dir.path() + "/out"));
  const std::string command = absl::StrCat(
      SCALELAB_TRAIN_BINARY, " --spec=", spec_path,
      " --set=sft.unique_examples=64 --set=sft.held_out_examples=8 --set=eval.tasks.problems=4"
      " 2>",
      dir.path(), "/stderr.txt");
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  while (size_t read = fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, read);
  const int status = pclose(pipe);
  INFO(out);
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_THAT(out, Catch::Contains("\"name\":\"gen_loss\"") &&
                      Catch::Contains("{\"eval\":\"pass@k\",\"step\":2,") &&
                      Catch::Contains("{\"artifact\":\"final\""));
  CHECK(std::filesystem::exists(dir.path() + "/out/final.pt"));
}
#endif

}  // namespace
}  // namespace scalelab::model
