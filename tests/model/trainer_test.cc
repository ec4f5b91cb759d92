// Train() end to end on tiny models and tiny synthetic data: a spec file in, metrics, final
// weights and exit codes out.

#include "model/trainer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/checkpoint.h"
#include "model/loops/divergence.h"
#include "model/lr_schedule.h"
#include "model/registry.h"
#include "model/spec_loader.h"
#include "runspec/exit_codes.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::RepetitiveCorpus;
using testing::TempDir;
using testing::WriteSource;

// A model and budget small enough for about a second on one core: 40 steps of 512 tokens.
std::string TinySpecYaml(const std::string& data_dir) {
  return R"(kind: RUN_KIND_PRETRAIN
config:
  model: {d_model: 32, n_layers: 1, n_heads: 2, seq_len: 32}
  data: {sources: {text: ")" +
         data_dir + R"("}}
  train: {tokens: 20480, batch_tokens: 512, lr: 1e-2}
  eval: {every_tokens: 10240, val_tokens: 1024, position_buckets: 1}
)";
}

// The tiny spec read from a YAML file as scalelab-train reads it, with `sets` as --set flags.
v1::RunSpec TinySpec(const TempDir& dir, const std::string& data_dir,
                     std::vector<std::string> sets = {}) {
  const std::string path = dir.Write("spec.yaml", TinySpecYaml(data_dir));
  SpecOverrides overrides;
  overrides.set = std::move(sets);
  absl::StatusOr<v1::RunSpec> spec = LoadRunSpec(path, overrides);
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

TEST_CASE("A YAML spec file trains end to end and reports metrics in order", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(TinySpec(dir, dir.path() + "/text"), sink);
  REQUIRE(summary.ok());
  CHECK(summary->steps == 40);
  CHECK(summary->tokens == 40 * 512);
  CHECK(summary->final_weights.empty());  // no output_dir: nothing saved
  CHECK(sink.artifacts().empty());

  const std::vector<Metric>& metrics = sink.metrics();
  REQUIRE(metrics.size() > 4);
  CHECK(metrics[0].name == "train_loss");
  CHECK(metrics[0].step == 1);  // steps / 100 == 0: every step reports.
  CHECK(metrics[1].name == "lr");
  CHECK(metrics[2].name == "tokens_per_s");
  CHECK(metrics.back().name == "val_loss");
  CHECK(metrics.back().step == 40);
  CHECK(metrics.back().tokens == 40 * 512);

  // Crossings of 10240 tokens at steps 20 and 40; the last step coincides with the second.
  const std::vector<double> val = sink.Values("val_loss");
  CHECK(val.size() == 2);
  const std::vector<double> train = sink.Values("train_loss");
  CHECK(train.size() == 40);
  CHECK(train.front() == Approx(std::log(256.0)).margin(0.3));
  CHECK(train.back() < 0.6 * train.front());
  CHECK(summary->final_val_loss == val.back());
  for (size_t idx = 1; idx < metrics.size(); ++idx) {
    CHECK(metrics[idx].step >= metrics[idx - 1].step);
    CHECK(metrics[idx].wall_time_s >= metrics[idx - 1].wall_time_s);
  }
}

TEST_CASE("The run record is written when the model is built and again with the tokens trained",
          "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary =
      Train(TinySpec(dir, dir.path() + "/text", {"train.tokens=5120"}), sink);
  REQUIRE(summary.ok());
  REQUIRE(sink.records().size() == 2);
  const v1::RunRecord& start = sink.records().front();
  const v1::RunRecord& end = sink.records().back();
  // d_model 32, 1 layer of 2 heads, seq_len 32, vocab 256, SwiGLU hidden 88: qkv and out
  // projections 4 d^2, SwiGLU 3 * 88 * d, two RMSNorm gains 2 d; the final RMSNorm's d.
  constexpr int64_t kMatrices = 4 * 32 * 32 + 3 * 88 * 32;
  constexpr int64_t kNonEmbedding = kMatrices + 2 * 32 + 32;
  CHECK(start.n_params() == kNonEmbedding);
  CHECK(start.n_params_total() == kNonEmbedding + 256 * 32);  // tied head, no position table
  // 6 x multiply-adds per token: the matrices, scores and values over the 32-token window
  // (2 * 32 * d) and the tied head (256 * d).
  CHECK(start.flops_per_token() == 6.0 * (kMatrices + 2 * 32 * 32 + 256 * 32));
  CHECK(start.family() == "transformer");
  CHECK(start.tokens() == 0);
  CHECK(start.flops() == 0);
  CHECK(end.n_params() == start.n_params());
  CHECK(end.tokens() == 10 * 512);
  CHECK(end.flops() == start.flops_per_token() * 10 * 512);
  CHECK(summary->n_params == start.n_params());
  CHECK(summary->flops_per_token == start.flops_per_token());
  CHECK(sink.Values("n_params").empty());  // no longer a metric
}

TEST_CASE("The same seed reproduces the same losses exactly and --set changes the run", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  const v1::RunSpec spec = TinySpec(dir, dir.path() + "/text", {"train.tokens=4096"});
  VectorMetricSink first;
  VectorMetricSink second;
  REQUIRE(Train(spec, first).ok());
  REQUIRE(Train(spec, second).ok());
  CHECK(first.Values("train_loss").size() == 8);
  CHECK(first.Values("train_loss") == second.Values("train_loss"));
  CHECK(first.Values("val_loss") == second.Values("val_loss"));

  VectorMetricSink other_seed;
  REQUIRE(
      Train(TinySpec(dir, dir.path() + "/text", {"train.tokens=4096", "train.seed=1"}), other_seed)
          .ok());
  CHECK(other_seed.Values("train_loss") != first.Values("train_loss"));
}

TEST_CASE("Several sources report a validation loss each and their weighted mean", "[model]") {
  TempDir dir;
  WriteSource(dir, "a", RepetitiveCorpus(5000));
  WriteSource(dir, "b", std::string(5000, 'z'));
  const v1::RunSpec spec = TinySpec(dir, dir.path() + "/a",
                                    {"train.tokens=2048", "data.sources.b=" + dir.path() + "/b",
                                     "data.mixture.text=1", "data.mixture.b=3"});
  VectorMetricSink sink;
  REQUIRE(Train(spec, sink).ok());
  const std::vector<Metric>& metrics = sink.metrics();
  REQUIRE(metrics.size() >= 3);
  const Metric& val_b = metrics[metrics.size() - 3];  // sources in name order
  const Metric& val_text = metrics[metrics.size() - 2];
  CHECK(val_b.name == "val_loss/b");
  CHECK(val_text.name == "val_loss/text");
  CHECK(metrics.back().value == Approx(0.75 * val_b.value + 0.25 * val_text.value));
}

TEST_CASE("Training reports data errors and invalid specs with their exit codes", "[model]") {
  TempDir dir;
  VectorMetricSink sink;
  v1::RunSpec spec = TinySpec(dir, dir.path() + "/nowhere");
  absl::StatusOr<TrainSummary> missing = Train(spec, sink);
  REQUIRE_FALSE(missing.ok());
  CHECK(runspec::ExitCodeForStatus(missing.status()) == runspec::kExitDataError);
  CHECK_THAT(std::string(missing.status().message()),
             Catch::Contains("nowhere/train.bin") && Catch::Contains("\"text\""));

  WriteSource(dir, "short", std::string(40, 'q'));  // val.bin gets 4 tokens < seq_len + 1
  (*spec.mutable_config()->mutable_data()->mutable_sources())["text"] = dir.path() + "/short";
  absl::StatusOr<TrainSummary> short_val = Train(spec, sink);
  REQUIRE_FALSE(short_val.ok());
  CHECK(runspec::ExitCodeForStatus(short_val.status()) == runspec::kExitDataError);
  CHECK_THAT(std::string(short_val.status().message()), Catch::Contains("need at least 33"));

  // Train() validates too, whoever calls it.
  spec.mutable_config()->mutable_train()->set_batch_tokens(100);
  absl::StatusOr<TrainSummary> invalid = Train(spec, sink);
  CHECK(runspec::ExitCodeForStatus(invalid.status()) == runspec::kExitInvalidSpec);
  CHECK_THAT(std::string(invalid.status().message()), Catch::Contains("train.batch_tokens"));
  CHECK(sink.metrics().empty());
}

TEST_CASE("A diverging run stops with the divergence exit code", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  // The first update overflows the weights; the second loss is NaN.
  const v1::RunSpec spec = TinySpec(
      dir, dir.path() + "/text", {"train.lr=1e30", "train.weight_decay=1e-9", "train.tokens=5120"});
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(spec, sink);
  REQUIRE_FALSE(summary.ok());
  CHECK(runspec::ExitCodeForStatus(summary.status()) == runspec::kExitDiverged);
  CHECK_THAT(std::string(summary.status().message()),
             Catch::StartsWith("training diverged at step ") && Catch::Contains("is not finite"));
  // The step is reported as a metric before the run fails.
  const std::vector<double> diverged = sink.Values("diverged_step");
  REQUIRE(diverged.size() == 1);
  CHECK_THAT(std::string(summary.status().message()),
             Catch::Contains(absl::StrCat("at step ", diverged[0], ":")));
  // The record still counts the steps that were trained before the loss went bad.
  REQUIRE(sink.records().size() == 2);
  const v1::RunRecord& end = sink.records().back();
  CHECK(end.tokens() == (diverged[0] - 1) * 512);
  CHECK(end.flops() == end.flops_per_token() * end.tokens());
}

TEST_CASE("Asking for CUDA without a GPU is an invalid spec", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(2000));
  v1::RunSpec spec = TinySpec(dir, dir.path() + "/text", {"train.tokens=512", "resources.gpus=1"});
  spec.mutable_execution()->set_device("cuda");
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(spec, sink);
  if (summary.ok()) {
    WARN("a CUDA device is present; nothing to check here");
    return;
  }
  CHECK(runspec::ExitCodeForStatus(summary.status()) == runspec::kExitInvalidSpec);
  CHECK_THAT(std::string(summary.status().message()), Catch::Contains("CUDA is not available"));
}

TEST_CASE("A model larger than memory fails with the out-of-memory exit code", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(2000));
  // The token embedding alone would take 65536 x 2e9 floats (524 TB), more than any address
  // space, so the allocation fails at once whatever the machine's overcommit policy.
  const v1::RunSpec spec =
      TinySpec(dir, dir.path() + "/text",
               {"train.tokens=512", "model.vocab_size=65536", "model.d_model=2000000000"});
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(spec, sink);
  REQUIRE_FALSE(summary.ok());
  CHECK(summary.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(runspec::ExitCodeForStatus(summary.status()) == runspec::kExitOutOfMemory);
  CHECK_THAT(std::string(summary.status().message()), Catch::Contains("out of"));
}

TEST_CASE("Final weights are announced and, loaded as init weights, give the same val loss",
          "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  v1::RunSpec first_spec = TinySpec(dir, dir.path() + "/text", {"train.tokens=5120"});
  first_spec.set_output_dir(dir.path() + "/attempt-1");
  VectorMetricSink first;
  absl::StatusOr<TrainSummary> trained = Train(first_spec, first);
  REQUIRE(trained.ok());
  const std::string final_path = dir.path() + "/attempt-1/final.pt";
  REQUIRE(first.artifacts().size() == 1);
  CHECK(first.artifacts()[0].kind == "final");
  CHECK(first.artifacts()[0].path == final_path);
  CHECK(first.artifacts()[0].step == 10);
  CHECK(trained->final_weights == final_path);
  CHECK(std::filesystem::file_size(final_path) > 0);

  v1::RunSpec second_spec = TinySpec(dir, dir.path() + "/text", {"train.tokens=512"});
  second_spec.mutable_init_artifact()->set_location(final_path);
  VectorMetricSink second;
  REQUIRE(Train(second_spec, second).ok());
  const std::vector<double> val = second.Values("val_loss");
  REQUIRE(val.size() == 2);
  CHECK(second.metrics()[0].name == "val_loss");  // before any training
  CHECK(second.metrics()[0].step == 0);
  CHECK(val.front() == Approx(trained->final_val_loss).margin(1e-6));
}

TEST_CASE("Init weights of another shape or a missing file are refused naming the file",
          "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(5000));
  v1::RunSpec spec = TinySpec(dir, dir.path() + "/text", {"train.tokens=512"});
  spec.set_output_dir(dir.path() + "/out");
  VectorMetricSink sink;
  REQUIRE(Train(spec, sink).ok());
  const std::string weights = dir.path() + "/out/final.pt";

  auto refusal = [&](std::vector<std::string> sets, const std::string& location) {
    sets.push_back("train.tokens=512");
    v1::RunSpec other = TinySpec(dir, dir.path() + "/text", sets);
    other.mutable_init_artifact()->set_location(location);
    VectorMetricSink ignored;
    absl::StatusOr<TrainSummary> summary = Train(other, ignored);
    REQUIRE_FALSE(summary.ok());
    return summary.status();
  };
  absl::Status wider = refusal({"model.d_model=64"}, weights);
  CHECK(wider.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(wider.message()),
             Catch::Contains(weights) && Catch::Contains("has shape [256, 32] in the file"));

  absl::Status deeper = refusal({"model.n_layers=2"}, weights);
  CHECK(deeper.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(deeper.message()),
             Catch::Contains(weights) && Catch::Contains("no module blocks.1"));

  absl::Status missing = refusal({}, dir.path() + "/nowhere.pt");
  CHECK(missing.code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(missing.message()), Catch::Contains("nowhere.pt"));

  absl::Status garbage = refusal({}, dir.Write("garbage.pt", "not a zip archive"));
  CHECK(garbage.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(garbage.message()), Catch::Contains("garbage.pt"));
}

TEST_CASE("The learning-rate schedules take their exact values", "[model][unit][lr]") {
  // wsd over 10 steps: 2 warmup steps, peak, then 3 decay steps ending at 0.1 x peak.
  const LrScheduleSpec wsd{LrSchedule::kWsd, 2.0, 0.2, 0.3, 0.1};
  const std::vector<double> expected = {1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.4, 0.8, 0.2};
  for (int64_t step = 0; step < 10; ++step) {
    INFO("step " << step);
    CHECK(LearningRateAt(step, 10, wsd) == Approx(expected[step]).epsilon(1e-12));
  }
  // No decay fraction: the peak to the end; a decay longer than what the warmup leaves is cut.
  CHECK(LearningRateAt(9, 10, LrScheduleSpec{LrSchedule::kWsd, 2.0, 0.2, 0.0, 0.1}) == 2.0);
  const LrScheduleSpec all_decay{LrSchedule::kWsd, 1.0, 0.5, 1.0, 0.0};
  CHECK(LearningRateAt(4, 10, all_decay) == Approx(1.0));
  CHECK(LearningRateAt(5, 10, all_decay) == Approx(0.8));
  CHECK(LearningRateAt(9, 10, all_decay) == 0.0);

  // Cosine over 11 steps without warmup: peak, half way at step 5, final_lr x peak at the end.
  const LrScheduleSpec cosine{LrSchedule::kCosine, 1.0, 0.0, 0.0, 0.2};
  CHECK(LearningRateAt(0, 11, cosine) == 1.0);
  CHECK(LearningRateAt(5, 11, cosine) == Approx(0.6).epsilon(1e-12));
  CHECK(LearningRateAt(10, 11, cosine) == Approx(0.2).epsilon(1e-12));
  CHECK(LearningRateAt(10, 11, LrScheduleSpec{LrSchedule::kCosine, 1.0, 0.0, 0.0, 0.0}) ==
        Approx(0.0).margin(1e-15));
  CHECK(LearningRateAt(10, 11, LrScheduleSpec{LrSchedule::kConstant, 3.0, 0.1, 0.2, 0.1}) == 3.0);
  CHECK(LrScheduleFromName("wsd") == LrSchedule::kWsd);
  CHECK(LrScheduleName(LrSchedule::kWsd) == "wsd");
}

TEST_CASE("The divergence detector compares with the best smoothed loss once armed",
          "[model][unit][divergence]") {
  DivergenceDetector detector(/*factor=*/3.0, /*warmup_steps=*/0);
  for (int64_t step = 1; step <= 10; ++step) {
    // Not armed yet: ten steps at least, whatever the loss.
    REQUIRE(detector.Observe(step, step == 5 ? 100.0 : 2.0).ok());
  }
  // EMA: 2, 2, 2, 2, 11.8, ... falling back towards 2; the best stays 2.
  CHECK(detector.state().best == 2.0);
  CHECK(detector.state().observed == 10);
  CHECK(detector.Observe(11, 6.0).ok());  // 6 is not above 3 x 2
  absl::Status status = detector.Observe(12, 6.5);
  CHECK(status.code() == absl::StatusCode::kAborted);
  CHECK(status.message() ==
        "training diverged at step 12: train_loss=6.5 exceeds 3 x the best smoothed loss 2");

  // A warmup longer than ten steps arms it later; NaN and inf fail at any step.
  DivergenceDetector long_warmup(3.0, 20);
  for (int64_t step = 1; step <= 20; ++step) REQUIRE(long_warmup.Observe(step, 1.0).ok());
  CHECK(long_warmup.Observe(21, 3.5).code() == absl::StatusCode::kAborted);
  DivergenceDetector fresh(3.0, 0);
  CHECK(fresh.Observe(1, std::nan("")).message() ==
        "training diverged at step 1: train_loss=nan is not finite");
  CHECK(fresh.Observe(1, INFINITY).code() == absl::StatusCode::kAborted);

  // The state carries over exactly: a restored detector decides as the original.
  DivergenceDetector restored(3.0, 0);
  restored.Restore(detector.state());
  CHECK(restored.Observe(12, 6.5).message() == status.message());
}

TEST_CASE("A loss far above its best smoothed value stops the run as diverged",
          "[model][unit][divergence]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  // A constant rate of 3 learns for a few steps, then throws the weights far off: the loss stays
  // finite but ends well above three times its best.
  const v1::RunSpec spec =
      TinySpec(dir, dir.path() + "/text",
               {"train.lr=3", "train.schedule=constant", "train.warmup=0", "train.tokens=20480"});
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(spec, sink);
  REQUIRE_FALSE(summary.ok());
  CHECK(runspec::ExitCodeForStatus(summary.status()) == runspec::kExitDiverged);
  INFO(summary.status().message());
  CHECK_THAT(std::string(summary.status().message()),
             Catch::Contains("exceeds 3 x the best smoothed loss"));
  const std::vector<double> diverged = sink.Values("diverged_step");
  REQUIRE(diverged.size() == 1);
  CHECK(diverged[0] > 10);  // armed after ten steps
  for (double loss : sink.Values("train_loss")) CHECK(std::isfinite(loss));
}

// The parameters stored in `path` for `spec`'s model, in the model's order.
std::vector<torch::Tensor> StoredWeights(const v1::RunSpec& spec, const std::string& path) {
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec.config().model());
  REQUIRE(model.ok());
  REQUIRE(LoadWeights(path, **model).ok());
  return (*model)->parameters();
}

TEST_CASE("Accumulating four micro-batches gives the weights of one full batch",
          "[model][unit][accumulation]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  // 4 windows of 32 tokens per step, 6 steps. AdamW divides by the gradient's RMS, so a
  // rounding difference in a tiny gradient moves a weight by up to ~lr x its relative size: the
  // rate is small to keep that far below the tolerance.
  const std::vector<std::string> sets = {"train.batch_tokens=128", "train.tokens=768",
                                         "train.lr=1e-3"};
  v1::RunSpec whole = TinySpec(dir, dir.path() + "/text", sets);
  whole.set_output_dir(dir.path() + "/whole");
  std::vector<std::string> micro_sets = sets;
  micro_sets.push_back("train.micro_batch_tokens=32");
  v1::RunSpec micro = TinySpec(dir, dir.path() + "/text", micro_sets);
  micro.set_output_dir(dir.path() + "/micro");
  CHECK(micro.config().train().micro_batch_tokens() == 32);
  CHECK(whole.config().train().micro_batch_tokens() == 0);  // 0: one pass of batch_tokens

  VectorMetricSink whole_sink;
  VectorMetricSink micro_sink;
  REQUIRE(Train(whole, whole_sink).ok());
  REQUIRE(Train(micro, micro_sink).ok());
  const std::vector<double> whole_loss = whole_sink.Values("train_loss");
  const std::vector<double> micro_loss = micro_sink.Values("train_loss");
  REQUIRE(whole_loss.size() == micro_loss.size());
  for (size_t idx = 0; idx < whole_loss.size(); ++idx) {
    CHECK(micro_loss[idx] == Approx(whole_loss[idx]).margin(1e-5));
  }
  const std::vector<torch::Tensor> expected = StoredWeights(whole, dir.path() + "/whole/final.pt");
  const std::vector<torch::Tensor> actual = StoredWeights(micro, dir.path() + "/micro/final.pt");
  REQUIRE(expected.size() == actual.size());
  double max_diff = 0;
  for (size_t idx = 0; idx < expected.size(); ++idx) {
    max_diff = std::max(max_diff, (expected[idx] - actual[idx]).abs().max().item<double>());
  }
  INFO("largest weight difference " << max_diff);
  CHECK(max_diff < 5e-6);
  CHECK(max_diff > 0);  // the summation order differs, so the test does compare two paths
}

TEST_CASE("bf16 precision on the CPU is an invalid spec", "[model][unit]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(2000));
  // The spec rules refuse it (at submission too); Train checks them again.
  v1::RunSpec spec = TinySpec(dir, dir.path() + "/text", {"train.tokens=512"});
  spec.mutable_config()->mutable_train()->set_precision("bf16");
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(spec, sink);
  REQUIRE_FALSE(summary.ok());
  CHECK(summary.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(summary.status().message()), Catch::StartsWith("train.precision"));
  CHECK(sink.metrics().empty());
}

TEST_CASE("Without a checkpoint folder a run starts fresh and writes no checkpoints",
          "[model][unit][checkpoint]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  // checkpoint.every_steps alone does nothing when the spec names no checkpoint_dir (by hand).
  const v1::RunSpec spec =
      TinySpec(dir, dir.path() + "/text", {"train.tokens=2048", "checkpoint.every_steps=1"});
  VectorMetricSink sink;
  std::ostringstream log;
  REQUIRE(Train(spec, sink, &log).ok());
  CHECK(sink.artifacts().empty());
  CHECK_THAT(log.str(), !Catch::Contains("resumed"));
  CHECK(sink.metrics().front().step == 1);
}

}  // namespace
}  // namespace scalelab::model
