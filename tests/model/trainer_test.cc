#include "model/trainer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::RepetitiveCorpus;
using testing::TempDir;

// A model and budget small enough for a few seconds on one core.
TrainOptions TinyRun(const std::string& data_dir) {
  TrainOptions options;
  options.sources = {DataSource{"text", data_dir, 1.0}};
  options.d_model = 32;
  options.n_layers = 1;
  options.n_heads = 2;
  options.seq_len = 32;
  options.batch_tokens = 512;
  options.tokens = 60000;  // 118 steps
  options.lr = 1e-2;
  options.eval_every_tokens = 20000;
  options.val_tokens = 1024;
  return options;
}

void WriteSource(const TempDir& dir, const std::string& name, const std::string& text) {
  const size_t split = text.size() * 9 / 10;
  dir.Write(name + "/train.bin", text.substr(0, split));
  dir.Write(name + "/val.bin", text.substr(split));
}

TEST_CASE("A tiny training run drives the loss down and reports metrics in order",
          "[model][slow]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(TinyRun(dir.path() + "/text"), sink);
  REQUIRE(summary.ok());
  CHECK(summary->steps == 118);
  CHECK(summary->tokens == 118 * 512);

  const std::vector<Metric>& metrics = sink.metrics();
  REQUIRE(metrics.size() > 6);
  CHECK(metrics[0].name == "n_params");
  CHECK(metrics[0].step == 0);
  CHECK(metrics[1].name == "n_params_total");
  CHECK(metrics[2].name == "train_loss");
  CHECK(metrics[2].step == 1);  // steps/100 == 1: every step reports.
  CHECK(metrics[3].name == "lr");
  CHECK(metrics[4].name == "tokens_per_s");
  CHECK(metrics.back().name == "val_loss");
  CHECK(metrics.back().step == 118);
  CHECK(metrics.back().tokens == 118 * 512);

  // Three crossings of 20000 tokens (at steps 40, 79, 118) plus the last step, which coincides.
  const std::vector<double> val = sink.Values("val_loss");
  CHECK(val.size() == 3);
  const std::vector<double> train = sink.Values("train_loss");
  CHECK(train.size() == 118);
  CHECK(train.front() == Approx(std::log(256.0)).margin(0.3));
  CHECK(train.back() < 1.0);
  CHECK(val.back() < 1.0);
  CHECK(summary->final_val_loss == val.back());
  for (size_t idx = 1; idx < metrics.size(); ++idx) {
    CHECK(metrics[idx].step >= metrics[idx - 1].step);
    CHECK(metrics[idx].wall_time_s >= metrics[idx - 1].wall_time_s);
  }
}

TEST_CASE("The same seed reproduces the same losses exactly", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  TrainOptions options = TinyRun(dir.path() + "/text");
  options.tokens = 8 * 512;
  VectorMetricSink first;
  VectorMetricSink second;
  REQUIRE(Train(options, first).ok());
  REQUIRE(Train(options, second).ok());
  CHECK(first.Values("train_loss") == second.Values("train_loss"));
  CHECK(first.Values("val_loss") == second.Values("val_loss"));

  options.seed = 1;
  VectorMetricSink other_seed;
  REQUIRE(Train(options, other_seed).ok());
  CHECK(other_seed.Values("train_loss") != first.Values("train_loss"));
}

TEST_CASE("Several sources report a validation loss each and their weighted mean", "[model]") {
  TempDir dir;
  WriteSource(dir, "a", RepetitiveCorpus(5000));
  WriteSource(dir, "b", std::string(5000, 'z'));
  TrainOptions options = TinyRun(dir.path() + "/a");
  options.sources.push_back(DataSource{"b", dir.path() + "/b", 3.0});
  options.tokens = 4 * 512;
  VectorMetricSink sink;
  REQUIRE(Train(options, sink).ok());
  const std::vector<Metric>& metrics = sink.metrics();
  REQUIRE(metrics.size() >= 3);
  const Metric& val_a = metrics[metrics.size() - 3];
  const Metric& val_b = metrics[metrics.size() - 2];
  CHECK(val_a.name == "val_loss/text");
  CHECK(val_b.name == "val_loss/b");
  CHECK(metrics.back().value == Approx(0.25 * val_a.value + 0.75 * val_b.value));
}

TEST_CASE("Training reports data and option errors with their exit codes", "[model]") {
  TempDir dir;
  VectorMetricSink sink;
  TrainOptions options = TinyRun(dir.path() + "/nowhere");
  absl::StatusOr<TrainSummary> missing = Train(options, sink);
  REQUIRE_FALSE(missing.ok());
  CHECK(ExitCodeForStatus(missing.status()) == kExitDataError);
  CHECK_THAT(std::string(missing.status().message()),
             Catch::Contains("nowhere/train.bin") && Catch::Contains("\"text\""));

  WriteSource(dir, "short", std::string(40, 'q'));  // val.bin gets 4 tokens < seq_len + 1
  options.sources[0].dir = dir.path() + "/short";
  absl::StatusOr<TrainSummary> short_val = Train(options, sink);
  REQUIRE_FALSE(short_val.ok());
  CHECK(ExitCodeForStatus(short_val.status()) == kExitDataError);
  CHECK_THAT(std::string(short_val.status().message()), Catch::Contains("need at least 33"));

  options.batch_tokens = 100;
  CHECK(ExitCodeForStatus(Train(options, sink).status()) == kExitInvalidOptions);
  CHECK(sink.metrics().empty());
}

TEST_CASE("A diverging run stops with the divergence exit code", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  TrainOptions options = TinyRun(dir.path() + "/text");
  options.lr = 1e30;  // The first update overflows the weights; the second loss is NaN.
  options.warmup = 0;
  options.weight_decay = 0;
  options.tokens = 20 * 512;
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(options, sink);
  REQUIRE_FALSE(summary.ok());
  CHECK(ExitCodeForStatus(summary.status()) == kExitDiverged);
  CHECK_THAT(std::string(summary.status().message()), Catch::Contains("diverged"));
}

TEST_CASE("Asking for CUDA without a GPU is an invalid option", "[model]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(2000));
  TrainOptions options = TinyRun(dir.path() + "/text");
  options.device = "cuda";
  options.tokens = 512;
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(options, sink);
  if (summary.ok()) {
    WARN("a CUDA device is present; nothing to check here");
    return;
  }
  CHECK(ExitCodeForStatus(summary.status()) == kExitInvalidOptions);
  CHECK_THAT(std::string(summary.status().message()), Catch::Contains("CUDA not available"));
}

}  // namespace
}  // namespace scalelab::model
