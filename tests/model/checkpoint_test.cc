// Checkpoints: what SaveTrainState writes is enough for a run to continue bit for bit, files
// appear atomically, old ones are pruned, and a damaged newest file falls back to the previous.

#include "model/checkpoint.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "model/registry.h"
#include "model/spec_loader.h"
#include "model/trainer.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::RepetitiveCorpus;
using testing::TempDir;
using testing::WriteSource;

// 240 steps of 64 tokens on a 16-wide model: report_every is 2, so a checkpoint at an odd step
// lands in the middle of a reporting interval; validation every 40 steps.
v1::RunSpec ResumeSpec(const TempDir& dir, std::vector<std::string> sets = {}) {
  const std::string path = dir.Write("spec.yaml", R"(kind: RUN_KIND_PRETRAIN
config:
  model: {d_model: 16, n_layers: 1, n_heads: 2, seq_len: 16}
  data: {sources: {text: ")" + dir.path() + R"(/text"}}
  train: {tokens: 15360, batch_tokens: 64, lr: 1e-2, warmup: 0.05}
  eval: {every_tokens: 2560, val_tokens: 256}
  checkpoint: {every_steps: 25, keep: 100}
)");
  SpecOverrides overrides;
  overrides.set = std::move(sets);
  absl::StatusOr<v1::RunSpec> spec = LoadRunSpec(path, overrides);
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  return *std::move(spec);
}

// The parameters stored in `path` (weights of `spec`'s model), in the model's order.
std::vector<torch::Tensor> StoredWeights(const v1::RunSpec& spec, const std::string& path) {
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec.config().model());
  REQUIRE(model.ok());
  absl::Status loaded = LoadWeights(path, **model);
  INFO(loaded.ToString());
  REQUIRE(loaded.ok());
  return (*model)->parameters();
}

// (step, value) of every metric called `name` with step > `after`.
std::vector<std::pair<int64_t, double>> Series(const VectorMetricSink& sink,
                                               const std::string& name, int64_t after = 0) {
  std::vector<std::pair<int64_t, double>> series;
  for (const Metric& metric : sink.metrics()) {
    if (metric.name == name && metric.step > after) series.emplace_back(metric.step, metric.value);
  }
  return series;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("A run resumed from a checkpoint reproduces the uninterrupted run bit for bit",
          "[model][unit][checkpoint]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  v1::RunSpec full_spec = ResumeSpec(dir);
  full_spec.set_checkpoint_dir(dir.path() + "/full-ckpt");
  full_spec.set_output_dir(dir.path() + "/full");
  VectorMetricSink full;
  REQUIRE(Train(full_spec, full).ok());

  // Checkpoints at 25, 50, ..., 225 (none at the last step), each announced.
  const std::vector<std::string> saved = ListCheckpoints(full_spec.checkpoint_dir());
  REQUIRE(saved.size() == 9);
  REQUIRE(full.artifacts().size() == 10);
  CHECK(full.artifacts()[0].kind == "checkpoint");
  CHECK(full.artifacts()[0].step == 25);
  CHECK(full.artifacts()[0].path == saved[0]);
  CHECK(full.artifacts().back().kind == "final");

  // A second attempt whose checkpoint folder holds only step 75's, as if it had died at ~80.
  constexpr int64_t kResumeStep = 75;
  v1::RunSpec resumed_spec = full_spec;
  resumed_spec.set_checkpoint_dir(dir.path() + "/resumed-ckpt");
  resumed_spec.set_output_dir(dir.path() + "/resumed");
  std::filesystem::create_directories(resumed_spec.checkpoint_dir());
  std::filesystem::copy_file(saved[2], resumed_spec.checkpoint_dir() + "/ckpt-75.pt");
  VectorMetricSink resumed;
  std::ostringstream log;
  absl::StatusOr<TrainSummary> summary = Train(resumed_spec, resumed, &log);
  INFO(summary.status().ToString() << "\n" << log.str());
  REQUIRE(summary.ok());
  CHECK_THAT(log.str(), Catch::Contains("resumed from step 75"));

  // Only the steps it trained are reported, and every value is the uninterrupted run's.
  for (const char* name : {"train_loss", "lr", "val_loss"}) {
    INFO(name);
    const auto expected = Series(full, name, kResumeStep);
    REQUIRE(!expected.empty());
    CHECK(Series(resumed, name) == expected);
  }
  CHECK(Series(resumed, "train_loss").front().first == 76);  // mid-interval: 75 was not reported
  CHECK(summary->final_val_loss == Series(full, "val_loss").back().second);
  CHECK(resumed.records().front().tokens() == kResumeStep * 64);
  CHECK(resumed.records().back().tokens() == 240 * 64);

  const std::vector<torch::Tensor> expected_weights =
      StoredWeights(full_spec, full_spec.output_dir() + "/final.pt");
  const std::vector<torch::Tensor> resumed_weights =
      StoredWeights(full_spec, summary->final_weights);
  REQUIRE(expected_weights.size() == resumed_weights.size());
  for (size_t idx = 0; idx < expected_weights.size(); ++idx) {
    CHECK(torch::equal(expected_weights[idx], resumed_weights[idx]));
  }
}

TEST_CASE("Checkpoints beyond checkpoint.keep are pruned, newest kept",
          "[model][unit][checkpoint]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  v1::RunSpec spec =
      ResumeSpec(dir, {"train.tokens=3200", "checkpoint.every_steps=10", "checkpoint.keep=2"});
  spec.set_checkpoint_dir(dir.path() + "/ckpt");
  // A temporary file a killed attempt left behind goes too.
  dir.Write("ckpt/ckpt-5.pt.tmp", "half a file");
  VectorMetricSink sink;
  REQUIRE(Train(spec, sink).ok());
  CHECK(ListCheckpoints(spec.checkpoint_dir()) ==
        std::vector<std::string>{spec.checkpoint_dir() + "/ckpt-30.pt",
                                 spec.checkpoint_dir() + "/ckpt-40.pt"});
  CHECK_FALSE(std::filesystem::exists(spec.checkpoint_dir() + "/ckpt-5.pt.tmp"));
  std::vector<int64_t> announced;
  for (const ArtifactRecord& artifact : sink.artifacts()) announced.push_back(artifact.step);
  CHECK(announced == std::vector<int64_t>{10, 20, 30, 40});  // no output_dir: no final.pt
}

TEST_CASE("Under a worker the trainer deletes no checkpoint: the worker prunes what is recorded",
          "[model][unit][checkpoint]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  v1::RunSpec spec =
      ResumeSpec(dir, {"train.tokens=3200", "checkpoint.every_steps=10", "checkpoint.keep=2"});
  spec.set_checkpoint_dir(dir.path() + "/ckpt");
  spec.mutable_execution()->set_worker_prunes_checkpoints(true);
  dir.Write("ckpt/ckpt-5.pt.tmp", "half a file");
  VectorMetricSink sink;
  REQUIRE(Train(spec, sink).ok());
  CHECK(ListCheckpoints(spec.checkpoint_dir()).size() == 4);
  CHECK_FALSE(std::filesystem::exists(spec.checkpoint_dir() + "/ckpt-5.pt.tmp"));
}

TEST_CASE("checkpoint.every_s writes a checkpoint once that much time has passed",
          "[model][unit][checkpoint]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  // A nanosecond has always passed by the end of a step: one checkpoint per step but the last.
  v1::RunSpec spec =
      ResumeSpec(dir, {"train.tokens=640", "checkpoint.every_steps=0", "checkpoint.every_s=1e-9"});
  spec.set_checkpoint_dir(dir.path() + "/ckpt");
  VectorMetricSink sink;
  REQUIRE(Train(spec, sink).ok());
  std::vector<int64_t> announced;
  for (const ArtifactRecord& artifact : sink.artifacts()) announced.push_back(artifact.step);
  CHECK(announced == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(ListCheckpoints(spec.checkpoint_dir()).size() == 9);
}

TEST_CASE("A truncated newest checkpoint and a stale temporary file are skipped on resume",
          "[model][unit][checkpoint]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  v1::RunSpec spec = ResumeSpec(dir, {"train.tokens=3200", "checkpoint.every_steps=10"});
  spec.set_checkpoint_dir(dir.path() + "/full");
  VectorMetricSink full;
  REQUIRE(Train(spec, full).ok());
  const std::vector<std::string> saved = ListCheckpoints(spec.checkpoint_dir());
  REQUIRE(saved.size() == 4);  // keep 100

  const std::string damaged = dir.path() + "/damaged";
  std::filesystem::create_directories(damaged);
  std::filesystem::copy_file(saved[1], damaged + "/ckpt-20.pt");
  const std::string whole = ReadBytes(saved[2]);
  dir.Write("damaged/ckpt-30.pt", whole.substr(0, whole.size() / 2));  // torn newest
  dir.Write("damaged/ckpt-40.pt.tmp", whole);                          // never renamed
  dir.Write("damaged/notes.txt", "not a checkpoint");

  std::ostringstream log;
  std::unique_ptr<SavedTrainState> state = LoadTrainState(damaged, &log);
  REQUIRE(state != nullptr);
  CHECK(state->path() == damaged + "/ckpt-20.pt");
  CHECK(state->counters().step == 20);
  CHECK(state->counters().data_position == 20);
  CHECK_THAT(log.str(), Catch::Contains("skipping checkpoint " + damaged + "/ckpt-30.pt"));

  absl::StatusOr<std::unique_ptr<SavedTrainState>> torn = ReadTrainState(damaged + "/ckpt-30.pt");
  REQUIRE_FALSE(torn.ok());
  CHECK(torn.status().code() == absl::StatusCode::kDataLoss);

  // The run goes on from step 20 and matches the uninterrupted one from there.
  spec.set_checkpoint_dir(damaged);
  VectorMetricSink resumed;
  std::ostringstream train_log;
  REQUIRE(Train(spec, resumed, &train_log).ok());
  CHECK_THAT(train_log.str(), Catch::Contains("resumed from step 20"));
  CHECK(Series(resumed, "train_loss") == Series(full, "train_loss", 20));

  // Nothing readable: a fresh start from step 1.
  const std::string hopeless = dir.path() + "/hopeless";
  dir.Write("hopeless/ckpt-10.pt", "garbage");
  CHECK(LoadTrainState(hopeless, nullptr) == nullptr);
  CHECK(LoadTrainState(dir.path() + "/nowhere", nullptr) == nullptr);
}

TEST_CASE("A checkpoint of another model is refused naming the file", "[model][unit][checkpoint]") {
  TempDir dir;
  WriteSource(dir, "text", RepetitiveCorpus(20000));
  v1::RunSpec spec = ResumeSpec(dir, {"train.tokens=1280", "checkpoint.every_steps=10"});
  spec.set_checkpoint_dir(dir.path() + "/ckpt");
  VectorMetricSink sink;
  REQUIRE(Train(spec, sink).ok());

  v1::RunSpec wider = ResumeSpec(dir, {"train.tokens=1280", "model.d_model=32"});
  wider.set_checkpoint_dir(spec.checkpoint_dir());
  absl::StatusOr<TrainSummary> summary = Train(wider, sink);
  REQUIRE_FALSE(summary.ok());
  CHECK(summary.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(summary.status().message()),
             Catch::Contains("checkpoint " + spec.checkpoint_dir() + "/ckpt-10.pt") &&
                 Catch::Contains("in the file"));
}

}  // namespace
}  // namespace scalelab::model
