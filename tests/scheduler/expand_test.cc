#include "scheduler/expand.h"

#include <catch2/catch.hpp>
#include <string>

namespace scalelab::scheduler {
namespace {

using ::scalelab::v1::RunConfig;
using ::scalelab::v1::SweepSpec;

// A base that passes every rule once defaults are applied.
RunConfig ValidBase() {
  RunConfig config;
  config.mutable_model()->set_d_model(64);
  config.mutable_model()->set_n_layers(2);
  config.mutable_model()->set_n_heads(4);
  config.mutable_model()->set_seq_len(64);
  (*config.mutable_data()->mutable_sources())["natural"] = "data/natural";
  (*config.mutable_data()->mutable_sources())["rephrased"] = "data/rephrased";
  config.mutable_train()->set_tokens(1e6);
  config.mutable_train()->set_batch_tokens(4096);
  config.mutable_train()->set_lr(3e-3);
  return config;
}

void AddAxis(SweepSpec* spec, const std::string& key, std::vector<std::string> values) {
  scalelab::v1::Axis* axis = spec->mutable_sweep()->mutable_grid()->add_axes();
  axis->set_key(key);
  for (const std::string& value : values) axis->add_values(value);
}

TEST_CASE("ApplyOverride reads integer fields written in scientific notation",
          "[scheduler][expand]") {
  RunConfig config;
  REQUIRE(ApplyOverride("train.batch_tokens", "2e7", &config).ok());
  CHECK(config.train().batch_tokens() == 20000000);
  REQUIRE(ApplyOverride("model.d_model", "64.0", &config).ok());
  CHECK(config.model().d_model() == 64);
  REQUIRE(ApplyOverride("model.n_layers", "12", &config).ok());
  CHECK(config.model().n_layers() == 12);
  REQUIRE(ApplyOverride("train.seed", "-3", &config).ok());
  CHECK(config.train().seed() == -3);
}

TEST_CASE("ApplyOverride rejects a fractional or out-of-range value for an integer field",
          "[scheduler][expand]") {
  RunConfig config;
  absl::Status status = ApplyOverride("model.d_model", "2.5", &config);
  CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  CHECK(status.message() == "model.d_model: expected an integer, got \"2.5\"");
  CHECK(config.model().d_model() == 0);

  status = ApplyOverride("model.d_model", "3e9", &config);
  CHECK(status.message() ==
        "model.d_model: expected an integer in [-2147483648, 2147483647], got \"3e9\"");
  CHECK_FALSE(ApplyOverride("model.d_model", "big", &config).ok());
  CHECK_FALSE(ApplyOverride("model.d_model", "", &config).ok());
}

TEST_CASE("ApplyOverride reads numbers and text for double and string fields",
          "[scheduler][expand]") {
  RunConfig config;
  REQUIRE(ApplyOverride("train.lr", "3e-3", &config).ok());
  CHECK(config.train().lr() == 3e-3);
  REQUIRE(ApplyOverride("train.tokens", "5e6", &config).ok());
  CHECK(config.train().tokens() == 5e6);
  REQUIRE(ApplyOverride("train.schedule", "constant", &config).ok());
  CHECK(config.train().schedule() == "constant");
  CHECK(ApplyOverride("train.lr", "fast", &config).message() ==
        "train.lr: expected a finite number, got \"fast\"");
  CHECK_FALSE(ApplyOverride("train.lr", "nan", &config).ok());
  CHECK_FALSE(ApplyOverride("train.lr", "inf", &config).ok());
}

TEST_CASE("ApplyOverride sets map entries, taking the rest of the key as the map key",
          "[scheduler][expand]") {
  RunConfig config = ValidBase();
  (*config.mutable_data()->mutable_mixture())["natural"] = 0.5;
  REQUIRE(ApplyOverride("data.mixture.rephrased", "0.33", &config).ok());
  REQUIRE(ApplyOverride("data.mixture.natural", "0.67", &config).ok());
  CHECK(config.data().mixture().size() == 2);
  CHECK(config.data().mixture().at("rephrased") == 0.33);
  CHECK(config.data().mixture().at("natural") == 0.67);

  REQUIRE(ApplyOverride("data.sources.web.v2", "data/web", &config).ok());
  CHECK(config.data().sources().at("web.v2") == "data/web");

  // A bad value leaves the map as it was.
  CHECK(ApplyOverride("data.mixture.natural", "lots", &config).message() ==
        "data.mixture.natural: expected a finite number, got \"lots\"");
  CHECK(config.data().mixture().at("natural") == 0.67);
  CHECK(config.data().mixture().size() == 2);
}

TEST_CASE("ApplyOverride names the valid keys when a key is unknown", "[scheduler][expand]") {
  RunConfig config;
  CHECK(ApplyOverride("model.d_modle", "64", &config).message() ==
        "model: expected one of the keys family, d_model, n_layers, n_heads, seq_len, d_ff, "
        "vocab_size, n_kv_heads, rope_theta, ssm, hybrid, got \"d_modle\"");
  CHECK(ApplyOverride("modle.d_model", "64", &config).message() ==
        "RunConfig: expected one of the keys model, data, train, eval, resources, init, "
        "checkpoint, sft, grpo, got \"modle\"");
  CHECK(ApplyOverride("model.d_model.x", "64", &config).message() ==
        "model.d_model: expected no further key (it is a single value), got \"x\"");
  CHECK(ApplyOverride("model..d_model", "64", &config).message() ==
        "RunConfig: expected a dotted key of non-empty names such as \"model.d_model\", got "
        "\"model..d_model\"");
  const absl::Status whole_message = ApplyOverride("model", "64", &config);
  CHECK(whole_message.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(whole_message.message()),
             Catch::StartsWith("model: expected a key naming one value inside this group"));
  CHECK_FALSE(ApplyOverride("data.mixture", "1", &config).ok());
}

TEST_CASE("ResolveRunConfigKey tells messages, maps and values apart", "[scheduler][expand]") {
  KeyShape shape = KeyShape::kValue;
  REQUIRE_FALSE(ResolveRunConfigKey("model", &shape).has_value());
  CHECK(shape == KeyShape::kMessage);
  REQUIRE_FALSE(ResolveRunConfigKey("data.sources", &shape).has_value());
  CHECK(shape == KeyShape::kMap);
  REQUIRE_FALSE(ResolveRunConfigKey("data.sources.natural", &shape).has_value());
  CHECK(shape == KeyShape::kValue);
  REQUIRE_FALSE(ResolveRunConfigKey("resources.gpus", &shape).has_value());
  CHECK(shape == KeyShape::kValue);
  CHECK(ResolveRunConfigKey("resources.tpus", &shape).has_value());
}

TEST_CASE("ApplyRunDefaults fills only the fields left at zero", "[scheduler][expand]") {
  RunConfig config = ValidBase();
  config.mutable_train()->set_weight_decay(0.01);
  ApplyRunDefaults(&config);
  CHECK(config.model().family() == "transformer");
  CHECK(config.model().vocab_size() == 256);
  CHECK(config.model().d_ff() == 0);
  CHECK(config.train().schedule() == "cosine");
  CHECK(config.train().weight_decay() == 0.01);
  CHECK(config.resources().cpus() == 1);
  CHECK(config.data().mixture().at("natural") == 1.0);
  CHECK(config.data().mixture().at("rephrased") == 1.0);
  CHECK(config.eval().val_tokens() == 65536);
  CHECK(config.eval().every_tokens() == 1e5);
  CHECK(ValidateRunConfig(config).ok());

  RunConfig gpu = ValidBase();
  gpu.mutable_resources()->set_gpus(2);
  ApplyRunDefaults(&gpu);
  CHECK(gpu.resources().cpus() == 0);
}

TEST_CASE("CheckRunConfig reports rules relating two fields with both keys",
          "[scheduler][expand]") {
  RunConfig config = ValidBase();
  config.mutable_model()->set_d_model(102);
  config.mutable_train()->set_batch_tokens(1000);
  ApplyRunDefaults(&config);
  const std::vector<FieldError> errors = CheckRunConfig(config);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].Message() == "model.d_model: expected a multiple of model.n_heads (4), got 102");
  CHECK(errors[0].involves == std::vector<std::string>{"model.d_model", "model.n_heads"});
  CHECK(errors[1].Message() ==
        "train.batch_tokens: expected a multiple of model.seq_len (64), got 1000");
  CHECK(ValidateRunConfig(config).message() == errors[0].Message());
}

TEST_CASE("CheckRunConfig rejects a mixture that names no source", "[scheduler][expand]") {
  RunConfig config = ValidBase();
  (*config.mutable_data()->mutable_mixture())["web"] = 1.0;
  ApplyRunDefaults(&config);
  CHECK(ValidateRunConfig(config).message() ==
        "data.mixture.web: expected the name of a source (natural, rephrased), got \"web\"");
}

TEST_CASE("ExpandSweep without a grid gives the base as one run", "[scheduler][expand]") {
  SweepSpec spec;
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  *spec.mutable_base() = ValidBase();
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  CHECK(runs->front().index == 0);
  CHECK(runs->front().overrides.empty());
  CHECK(runs->front().config.model().d_model() == 64);
  CHECK(runs->front().config.eval().every_tokens() == 1e5);
}

TEST_CASE("ExpandSweep varies the first axis slowest and derives per-run defaults",
          "[scheduler][expand]") {
  SweepSpec spec;
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  *spec.mutable_base() = ValidBase();
  AddAxis(&spec, "model.d_model", {"32", "64"});
  AddAxis(&spec, "train.tokens", {"5e5", "1e6", "2e6"});
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(spec);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 6);
  const std::vector<std::pair<int, double>> expected = {{32, 5e5}, {32, 1e6}, {32, 2e6},
                                                        {64, 5e5}, {64, 1e6}, {64, 2e6}};
  for (int run_idx = 0; run_idx < 6; ++run_idx) {
    const ExpandedRun& run = (*runs)[run_idx];
    CHECK(run.index == run_idx);
    CHECK(run.config.model().d_model() == expected[run_idx].first);
    CHECK(run.config.train().tokens() == expected[run_idx].second);
    CHECK(run.config.eval().every_tokens() == expected[run_idx].second / 10);
    CHECK(run.overrides.size() == 2);
  }
  CHECK((*runs)[4].overrides.at("model.d_model") == "64");
  CHECK((*runs)[4].overrides.at("train.tokens") == "1e6");
}

TEST_CASE("ExpandSweep rejects a run that the grid makes invalid, naming its overrides",
          "[scheduler][expand]") {
  SweepSpec spec;
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  *spec.mutable_base() = ValidBase();
  AddAxis(&spec, "model.d_model", {"64", "96"});
  AddAxis(&spec, "model.n_heads", {"4", "8", "5"});
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(spec);
  REQUIRE_FALSE(runs.ok());
  CHECK(runs.status().message() ==
        "run 2 (model.d_model=64, model.n_heads=5): model.d_model: expected a multiple of "
        "model.n_heads (5), got 64");
}

TEST_CASE("ExpandSweep rejects more than 100000 runs before building any", "[scheduler][expand]") {
  SweepSpec spec;
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  *spec.mutable_base() = ValidBase();
  std::vector<std::string> values;
  for (int value = 1; value <= 1001; ++value) values.push_back(std::to_string(value));
  AddAxis(&spec, "train.seed", values);
  AddAxis(&spec, "train.lr", std::vector<std::string>(values.begin(), values.begin() + 100));
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(spec);
  REQUIRE_FALSE(runs.ok());
  CHECK(runs.status().message() ==
        "sweep.grid: expected at most 100000 runs, got 100100 (1001 x 100)");
}

TEST_CASE("ExpandSweep rejects an empty axis and a repeated key", "[scheduler][expand]") {
  SweepSpec spec;
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  *spec.mutable_base() = ValidBase();
  AddAxis(&spec, "model.d_model", {});
  CHECK(ExpandSweep(spec).status().message() ==
        "sweep.grid.\"model.d_model\": expected at least one value, got none");

  SweepSpec repeated;
  *repeated.mutable_base() = ValidBase();
  AddAxis(&repeated, "model.d_model", {"32"});
  AddAxis(&repeated, "model.d_model", {"64"});
  CHECK(ExpandSweep(repeated).status().message() ==
        "sweep.grid: expected each key once, got \"model.d_model\" twice");
}

TEST_CASE("KeysOverlap matches a key with the keys under it", "[scheduler][expand]") {
  CHECK(KeysOverlap("data.mixture", "data.mixture.web"));
  CHECK(KeysOverlap("data.mixture.web", "data.mixture"));
  CHECK(KeysOverlap("model.d_model", "model.d_model"));
  CHECK_FALSE(KeysOverlap("model.d_model", "model.d_ff"));
  CHECK_FALSE(KeysOverlap("train.tokens", "train.tokens_x"));
}

TEST_CASE("A list field is set whole from comma-separated values", "[scheduler][expand]") {
  RunConfig config;
  REQUIRE(ApplyOverride("eval.recall_lengths", "128, 256,512", &config).ok());
  REQUIRE(config.eval().recall_lengths_size() == 3);
  CHECK(config.eval().recall_lengths(2) == 512);
  CHECK(ApplyOverride("eval.recall_lengths", "128,1e3,x", &config).message() ==
        "eval.recall_lengths: expected a comma-separated list of integers (\"x\" is not one), got "
        "\"128,1e3,x\"");
  CHECK(config.eval().recall_lengths_size() == 3);  // unchanged by the failed override
  REQUIRE(ApplyOverride("eval.recall_lengths", "", &config).ok());
  CHECK(config.eval().recall_lengths_size() == 0);
}

}  // namespace
}  // namespace scalelab::scheduler
