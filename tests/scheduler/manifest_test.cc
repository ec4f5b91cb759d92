#include "scheduler/manifest.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "scheduler/expand.h"

namespace scalelab::scheduler {
namespace {

namespace fs = std::filesystem;
using ::scalelab::v1::SweepSpec;

const fs::path kSourceDir = SCALELAB_SOURCE_DIR;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The manifest from DESIGN.md.
constexpr char kDesignManifest[] = R"(name: synthetic-mix-scaling
project: pretraining
kind: pretrain                  # pretrain | sft | grpo | eval
base:
  model: {family: transformer, d_model: 128, n_layers: 4, n_heads: 4, seq_len: 256}
  data:  {sources: {natural: data/natural, rephrased: data/rephrased}, mixture: {natural: 0.67, rephrased: 0.33}}
  train: {tokens: 2e7, batch_tokens: 16384, lr: 3e-3, schedule: cosine, warmup: 0.05}
  eval:  {every_tokens: 2e6, val_tokens: 2e5}
  resources: {gpus: 1}
sweep:
  grid: {model.d_model: [64, 128, 256], train.tokens: [5e6, 1e7, 2e7], data.mixture.rephrased: [0, 0.33, 0.67]}
fit:
  law: chinchilla
  group_by: [data.mixture.rephrased]
max_attempts: 3     # optional
)";

TEST_CASE("The tiny-scaling example parses and expands to six runs in grid order",
          "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec =
      ParseManifest(ReadFile(kSourceDir / "examples/tiny-scaling.yaml"), "tiny-scaling.yaml");
  REQUIRE(spec.ok());
  CHECK(spec->name() == "tiny-scaling");
  CHECK(spec->project() == "demo");
  CHECK(spec->kind() == scalelab::v1::RUN_KIND_PRETRAIN);
  CHECK(spec->max_attempts() == 3);
  CHECK(spec->fit().law() == "chinchilla");
  CHECK(spec->base().data().sources().at("gcide") == "data/gcide");
  CHECK(spec->base().data().mixture().at("gcide") == 1.0);
  CHECK(spec->base().resources().gpus() == 0);
  CHECK(spec->base().resources().cpus() == 1);

  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(*spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 6);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"32", "1e6"}, {"32", "2e6"}, {"64", "1e6"}, {"64", "2e6"}, {"128", "1e6"}, {"128", "2e6"}};
  for (int run_idx = 0; run_idx < 6; ++run_idx) {
    const ExpandedRun& run = (*runs)[run_idx];
    CHECK(run.index == run_idx);
    CHECK(run.overrides ==
          std::map<std::string, std::string>{{"model.d_model", expected[run_idx].first},
                                             {"train.tokens", expected[run_idx].second}});
    CHECK(run.config.model().d_model() == std::stoi(expected[run_idx].first));
    CHECK(run.config.train().tokens() == std::stod(expected[run_idx].second));
    CHECK(run.config.eval().every_tokens() == 5e5);
    CHECK(run.config.model().n_heads() == 4);
  }
}

TEST_CASE("The e2e-small example parses and expands to three runs fitted by the compute law",
          "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec =
      ParseManifest(ReadFile(kSourceDir / "examples/e2e-small.yaml"), "e2e-small.yaml");
  REQUIRE(spec.ok());
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(*spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 3);
  CHECK((*runs)[0].config.model().d_model() == 16);
  CHECK((*runs)[2].config.model().d_model() == 64);
  CHECK((*runs)[2].config.train().tokens() == 1e6);
  CHECK((*runs)[2].config.eval().every_tokens() == 2.5e5);
  CHECK(spec->fit().law() == "compute");
  CHECK(spec->fit().bootstrap() == 200);
}

TEST_CASE("The families example expands to a Transformer, a Mamba-2 and a hybrid run",
          "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec =
      ParseManifest(ReadFile(kSourceDir / "examples/families.yaml"), "families.yaml");
  INFO(spec.status().message());
  REQUIRE(spec.ok());
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(*spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 3);
  CHECK((*runs)[0].config.model().family() == "transformer");
  CHECK((*runs)[1].config.model().family() == "mamba2");
  CHECK((*runs)[2].config.model().family() == "hybrid");
  // Per-run defaults fill the sections each family reads.
  CHECK((*runs)[1].config.model().ssm().expand() == 2);
  CHECK((*runs)[2].config.model().hybrid().mode() == "sequential");
  CHECK((*runs)[2].config.eval().recall_lengths_size() == 3);
  CHECK((*runs)[2].config.checkpoint().every_steps() == 50);
}

TEST_CASE("The manifest from the design document parses into 27 runs", "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest(kDesignManifest, "design.yaml");
  REQUIRE(spec.ok());
  REQUIRE(spec->sweep().grid().axes_size() == 3);
  CHECK(spec->sweep().grid().axes(0).key() == "model.d_model");
  CHECK(spec->sweep().grid().axes(2).key() == "data.mixture.rephrased");
  CHECK(spec->sweep().grid().axes(1).values(0) == "5e6");
  CHECK(spec->fit().group_by(0) == "data.mixture.rephrased");
  CHECK(spec->base().train().tokens() == 2e7);
  CHECK(spec->base().train().weight_decay() == 0.1);
  CHECK(spec->base().resources().cpus() == 0);
  // train.tokens is swept, so each run gets its own evaluation interval... unless the manifest
  // sets one, as this one does.
  CHECK(spec->base().eval().every_tokens() == 2e6);
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(*spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 27);
  const ExpandedRun& last = runs->back();
  CHECK(last.config.data().mixture().at("rephrased") == 0.67);
  CHECK(last.config.data().mixture().at("natural") == 0.67);
  CHECK((*runs)[1].config.data().mixture().at("rephrased") == 0.33);
}

TEST_CASE("A swept token budget leaves the evaluation interval to each run",
          "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest(R"(
name: per-run-eval
project: demo
kind: pretrain
base:
  model.d_model: 64
  model: {n_layers: 2, n_heads: 4, seq_len: 64}
  data.sources.web: data/web
  train: {batch_tokens: 4096, lr: 1e-3}
sweep:
  grid: {train.tokens: [1e6, 4e6]}
)",
                                                 "per-run-eval.yaml");
  REQUIRE(spec.ok());
  CHECK(spec->base().eval().every_tokens() == 0);
  CHECK(spec->base().model().d_model() == 64);
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(*spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 2);
  CHECK((*runs)[0].config.eval().every_tokens() == 1e5);
  CHECK((*runs)[1].config.eval().every_tokens() == 4e5);
}

TEST_CASE("A rule relating two swept fields is checked on every run", "[scheduler][manifest]") {
  // d_model 96 with base n_heads 4 is fine, and so is every run; a check of each value against the
  // base alone would wrongly reject n_heads 3 (128 % 3 != 0).
  absl::StatusOr<SweepSpec> ok = ParseManifest(R"(name: heads
project: demo
kind: pretrain
base:
  model: {d_model: 128, n_layers: 2, n_heads: 4, seq_len: 64}
  data: {sources: {web: data/web}}
  train: {tokens: 1e6, batch_tokens: 4096, lr: 1e-3}
sweep:
  grid: {model.d_model: [96, 192], model.n_heads: [3, 6]}
)",
                                               "heads.yaml");
  CHECK(ok.status().message() == "");

  absl::StatusOr<SweepSpec> bad = ParseManifest(R"(name: heads
project: demo
kind: pretrain
base:
  model: {d_model: 128, n_layers: 2, n_heads: 4, seq_len: 64}
  data: {sources: {web: data/web}}
  train: {tokens: 1e6, batch_tokens: 4096, lr: 1e-3}
sweep:
  grid:
    model.d_model: [96, 128]
    model.n_heads: [3, 6]
)",
                                                "heads.yaml");
  CHECK(bad.status().message() ==
        "heads.yaml:9: sweep.grid: run 2 (model.d_model=128, model.n_heads=3): model.d_model: "
        "expected a multiple of model.n_heads (3), got 128");
}

TEST_CASE("YAML syntax errors carry the parser's line and column", "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest("name: x\nbase: {model: [1, 2}\n", "broken.yaml");
  REQUIRE_FALSE(spec.ok());
  CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(spec.status().message()),
             Catch::StartsWith("broken.yaml:2:") && Catch::Contains("YAML syntax error"));
}

TEST_CASE("An empty document is rejected at line 1", "[scheduler][manifest]") {
  CHECK(ParseManifest("", "empty.yaml").status().message() ==
        "empty.yaml:1: manifest: expected a map with the keys name, project, kind, base, ..., got "
        "an empty document");
}

TEST_CASE("A field written both nested and dotted is rejected", "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest(R"(name: twice
base:
  model: {d_model: 64}
  model.d_model: 128
)",
                                                 "twice.yaml");
  CHECK(spec.status().message() ==
        "twice.yaml:4: base: expected each key once, got \"model.d_model\" twice");
}

// Every file in testdata/invalid/ starts with "# expect: <message substring>", the message
// ParseManifest must return for it (with the file's name as the source).
TEST_CASE("Each invalid manifest in testdata is rejected with its expected message",
          "[scheduler][manifest]") {
  const fs::path dir = kSourceDir / "tests/scheduler/testdata/invalid";
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 15);
  for (const fs::path& file : files) {
    const std::string text = ReadFile(file);
    const std::string first_line = text.substr(0, text.find('\n'));
    const std::string marker = "# expect: ";
    INFO(file.filename().string());
    REQUIRE(first_line.rfind(marker, 0) == 0);
    const std::string expected = first_line.substr(marker.size());
    absl::StatusOr<SweepSpec> spec = ParseManifest(text, file.filename().string());
    REQUIRE_FALSE(spec.ok());
    CHECK(spec.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(spec.status().message()), Catch::Contains(expected));
  }
}

SweepSpec ValidSpec() {
  SweepSpec spec;
  spec.set_name("from-code");
  spec.set_project("demo");
  spec.set_kind(scalelab::v1::RUN_KIND_PRETRAIN);
  scalelab::v1::RunConfig& base = *spec.mutable_base();
  base.mutable_model()->set_n_layers(2);
  base.mutable_model()->set_n_heads(4);
  base.mutable_model()->set_seq_len(64);
  (*base.mutable_data()->mutable_sources())["web"] = "data/web";
  base.mutable_train()->set_tokens(1e6);
  base.mutable_train()->set_batch_tokens(4096);
  base.mutable_train()->set_lr(1e-3);
  scalelab::v1::Axis& axis = *spec.mutable_sweep()->mutable_grid()->add_axes();
  axis.set_key("model.d_model");
  axis.add_values("32");
  axis.add_values("64");
  spec.mutable_fit()->set_law("chinchilla");
  spec.mutable_fit()->add_group_by("model.d_model");
  return spec;
}

TEST_CASE("ValidateSweepSpec accepts a spec built in code, before and after defaults",
          "[scheduler][manifest]") {
  SweepSpec spec = ValidSpec();
  CHECK(ValidateSweepSpec(spec).message() == "");
  ApplySweepDefaults(&spec);
  CHECK(spec.max_attempts() == 3);
  CHECK(spec.base().model().family() == "transformer");
  CHECK(spec.fit().law() == "chinchilla");
  CHECK(spec.fit().bootstrap() == 1000);
  CHECK(spec.fit().confidence() == 0.95);
  CHECK(spec.fit().metric() == "val_loss");
  CHECK(ValidateSweepSpec(spec).ok());
}

TEST_CASE("The fit section takes a law, bootstrap refits, a confidence and a metric",
          "[scheduler][manifest]") {
  absl::StatusOr<SweepSpec> spec = ParseManifest(R"(name: fits
project: demo
kind: pretrain
base:
  model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 64}
  data: {sources: {web: data/web}}
  train: {tokens: 1e6, batch_tokens: 4096, lr: 1e-3}
fit: {law: compute, bootstrap: 200, confidence: 0.9, metric: train_loss}
)",
                                                 "fits.yaml");
  REQUIRE(spec.ok());
  CHECK(spec->fit().law() == "compute");
  CHECK(spec->fit().bootstrap() == 200);
  CHECK(spec->fit().confidence() == 0.9);
  CHECK(spec->fit().metric() == "train_loss");
}

TEST_CASE("ValidateSweepSpec names the field path without a line", "[scheduler][manifest]") {
  SweepSpec spec = ValidSpec();
  spec.set_name("has space");
  CHECK(ValidateSweepSpec(spec).message() ==
        "name: expected 1 to 100 characters from [A-Za-z0-9._-], got \"has space\"");

  spec = ValidSpec();
  spec.set_kind(scalelab::v1::RUN_KIND_UNSPECIFIED);
  CHECK(ValidateSweepSpec(spec).message() ==
        "kind: expected one of pretrain, sft, grpo, eval, got none");

  spec = ValidSpec();
  spec.mutable_base()->mutable_train()->set_lr(-1);
  CHECK(ValidateSweepSpec(spec).message() ==
        "base.train.lr: expected a positive finite learning rate, got -1");

  spec = ValidSpec();
  spec.mutable_sweep()->mutable_grid()->mutable_axes(0)->add_values("0");
  CHECK(ValidateSweepSpec(spec).message() ==
        "sweep.grid.\"model.d_model\": expected each value to be a positive integer, got \"0\"");

  spec = ValidSpec();
  spec.mutable_fit()->set_group_by(0, "train.tokens");
  CHECK(ValidateSweepSpec(spec).message() ==
        "fit.group_by: expected one of the grid keys model.d_model, got \"train.tokens\"");

  spec = ValidSpec();
  spec.mutable_sweep()->mutable_grid()->mutable_axes(0)->set_key("model.width");
  CHECK(ValidateSweepSpec(spec).message() ==
        "sweep.grid.\"model.width\": not a RunConfig key: model: expected one of the keys family, "
        "d_model, n_layers, n_heads, seq_len, d_ff, vocab_size, n_kv_heads, rope_theta, ssm, "
        "hybrid, got \"width\"");

  spec = ValidSpec();
  spec.set_max_attempts(101);
  CHECK(ValidateSweepSpec(spec).message() ==
        "max_attempts: expected an integer in [1, 100], got 101");
}

TEST_CASE("ValidateSweepSpec counts runs before checking each grid value",
          "[scheduler][manifest]") {
  SweepSpec spec = ValidSpec();
  scalelab::v1::Axis& seeds = *spec.mutable_sweep()->mutable_grid()->add_axes();
  seeds.set_key("train.seed");
  for (int seed = 0; seed < 200000; ++seed) seeds.add_values(std::to_string(seed));
  CHECK(ValidateSweepSpec(spec).message() ==
        "sweep.grid: expected at most 100000 runs, got 400000 (2 x 200000)");
}

}  // namespace
}  // namespace scalelab::scheduler
