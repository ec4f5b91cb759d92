// Train() end to end on tiny models and tiny synthetic data: a spec file in, metrics, final
// weights and exit codes out.

#include "model/trainer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

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
  eval: {every_tokens: 10240, val_tokens: 1024}
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
  // d_model 32, 1 layer, seq_len 32, vocab 256: per layer 12 d^2 + 13 d (attention and MLP
  // weights and biases, two LayerNorms) and the final LayerNorm's 2 d.
  constexpr int64_t kNonEmbedding = 12 * 32 * 32 + 13 * 32 + 2 * 32;
  CHECK(start.n_params() == kNonEmbedding);
  CHECK(start.n_params_total() == kNonEmbedding + 256 * 32 + 32 * 32);  // tied head
  CHECK(start.flops_per_token() == 6.0 * kNonEmbedding + 6.0 * 1 * 32 * 32);
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
  CHECK_THAT(std::string(summary.status().message()), Catch::Contains("diverged"));
  // The record still counts the steps that were trained before the loss went bad.
  REQUIRE(sink.records().size() == 2);
  const v1::RunRecord& end = sink.records().back();
  CHECK(end.tokens() < 5120);
  CHECK(std::fmod(end.tokens(), 512) == 0);
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

}  // namespace
}  // namespace scalelab::model
