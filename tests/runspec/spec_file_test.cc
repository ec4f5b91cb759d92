#include "runspec/spec_file.h"

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/message_differencer.h"
#include "runspec/exit_codes.h"
#include "runspec/run_config.h"

namespace scalelab::runspec {
namespace {

constexpr char kYamlSpec[] = R"(
kind: RUN_KIND_PRETRAIN
config:
  model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 32}
  data: {sources: {text: /data/text, "2024": /data/numbers}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3, warmup: 0.1}
)";

TEST_CASE("A YAML spec and its JSON form read to the same run", "[runspec][unit]") {
  auto from_yaml = ParseRunSpec(kYamlSpec, "spec.yaml");
  REQUIRE(from_yaml.ok());
  CHECK(from_yaml->config().model().d_model() == 64);
  CHECK(from_yaml->config().train().tokens() == 1e5);
  CHECK(from_yaml->config().data().sources().at("2024") == "/data/numbers");
  auto from_json = ParseRunSpec(RunSpecToJson(*from_yaml), "spec.json");
  REQUIRE(from_json.ok());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(*from_yaml, *from_json));
}

TEST_CASE("A spec with an unknown or mistyped field is refused, naming the file",
          "[runspec][unit]") {
  auto unknown = ParseRunSpec("config: {model: {d_modle: 64}}", "spec.yaml");
  REQUIRE(absl::IsInvalidArgument(unknown.status()));
  CHECK(unknown.status().message().find("spec.yaml: ") == 0);
  CHECK(unknown.status().message().find("d_modle") != absl::string_view::npos);

  auto mistyped = ParseRunSpec("config: {model: {d_model: big}}", "spec.yaml");
  REQUIRE(absl::IsInvalidArgument(mistyped.status()));
  CHECK(mistyped.status().message().find("d_model") != absl::string_view::npos);

  auto syntax = ParseRunSpec("config: {model: [", "spec.yaml");
  REQUIRE(absl::IsInvalidArgument(syntax.status()));
  CHECK(syntax.status().message().find("YAML syntax error") != absl::string_view::npos);

  CHECK(absl::IsNotFound(ReadRunSpecFile("/nonexistent/spec.yaml").status()));
}

TEST_CASE("Defaults are applied once and a completed spec validates", "[runspec][unit]") {
  auto spec = ParseRunSpec(kYamlSpec, "spec.yaml");
  REQUIRE(spec.ok());
  ApplySpecDefaults(&*spec);
  CHECK(spec->attempt() == 1);
  CHECK(spec->execution().device() == "cpu");
  CHECK(spec->execution().threads() == 1);
  CHECK(spec->config().model().vocab_size() == 256);
  CHECK(spec->config().train().schedule() == "cosine");
  CHECK(spec->config().eval().every_tokens() == 1e4);
  CHECK(spec->config().data().mixture().at("text") == 1.0);
  CHECK(ValidateRunSpec(*spec).ok());
  v1::RunSpec twice = *spec;
  ApplySpecDefaults(&twice);
  CHECK(google::protobuf::util::MessageDifferencer::Equals(*spec, twice));
}

TEST_CASE("The trainer's rules are the scheduler's rules", "[runspec][unit]") {
  auto spec = ParseRunSpec(kYamlSpec, "spec.yaml");
  REQUIRE(spec.ok());
  ApplySpecDefaults(&*spec);
  // Both sides used to disagree on these; now there is one rule.
  spec->mutable_config()->mutable_model()->set_vocab_size(100);
  CHECK(ValidateRunSpec(*spec).message() ==
        "model.vocab_size: expected an integer in [256, 1048576], got 100");
  CHECK(ValidateRunConfig(spec->config()).message() == ValidateRunSpec(*spec).message());
  spec->mutable_config()->mutable_model()->set_vocab_size(256);
  spec->mutable_config()->mutable_train()->set_warmup(1.0);
  CHECK(ValidateRunSpec(*spec).message() ==
        "train.warmup: expected a fraction of the steps in [0, 1), got 1");
  spec->mutable_config()->mutable_train()->set_warmup(0.1);

  // Issue-6 model and training options: defaults fill family sections only where read.
  // Derived defaults stay 0 (a grid may change the field they derive from).
  CHECK(spec->config().model().n_kv_heads() == 0);
  CHECK_FALSE(spec->config().model().has_ssm());
  CHECK(spec->config().train().micro_batch_tokens() == 0);
  spec->mutable_config()->mutable_model()->set_n_kv_heads(3);
  CHECK(ValidateRunSpec(*spec).message().rfind("model.n_kv_heads: expected a divisor of", 0) == 0);
  spec->mutable_config()->mutable_model()->set_n_kv_heads(1);
  CHECK(ValidateRunSpec(*spec).ok());
  {
    v1::RunConfig hybrid = spec->config();
    hybrid.mutable_model()->set_family("hybrid");
    hybrid.mutable_model()->mutable_hybrid()->set_pattern("MAM");
    ApplyRunDefaults(&hybrid);
    CHECK(hybrid.model().ssm().d_state() == 16);
    CHECK(ValidateRunConfig(hybrid).message() ==
          absl::StrCat("model.hybrid.pattern: expected ", hybrid.model().n_layers(),
                       " letters (model.n_layers), got 3 letters"));
    hybrid.mutable_model()->mutable_hybrid()->set_pattern("");
    CHECK(ValidateRunConfig(hybrid).ok());
    hybrid.mutable_train()->set_schedule("wsd");
    hybrid.mutable_train()->set_decay(0.95);
    CHECK(ValidateRunConfig(hybrid).message() ==
          "train.decay: expected at most 1 - train.warmup (0.9), got 0.95");
    hybrid.mutable_train()->set_decay(0.2);
    hybrid.mutable_train()->set_micro_batch_tokens(hybrid.train().batch_tokens() * 2);
    CHECK(ValidateRunConfig(hybrid).message().rfind(
              "train.batch_tokens: expected a multiple of train.micro_batch_tokens", 0) == 0);
  }

  spec->mutable_execution()->set_device("cuda");
  CHECK(ValidateRunSpec(*spec).message() ==
        "execution.device: expected \"cpu\" for a run with resources.gpus 0, got \"cuda\"");
  spec->mutable_execution()->set_device("cpu");
  (*spec->mutable_config()->mutable_data()->mutable_sources())["text"] = "relative/dir";
  CHECK(ValidateRunSpec(*spec).message() ==
        "config.data.sources.text: expected an absolute folder (the worker resolves relative "
        "ones), got \"relative/dir\"");
  ResolveDataFolders("/root", &*spec);
  CHECK(spec->config().data().sources().at("text") == "/root/relative/dir");
  CHECK(ValidateRunSpec(*spec).ok());

  spec->mutable_config()->mutable_init()->set_from_run(3);
  spec->mutable_config()->mutable_init()->set_from_artifact(4);
  CHECK(ValidateRunSpec(*spec).message() ==
        "init.from_artifact: expected at most one of init.from_run and init.from_artifact, got 4");
}

TEST_CASE("Long values are cut when echoed in errors", "[runspec][unit]") {
  v1::RunConfig config;
  const std::string long_family(2 << 20, 'x');
  config.mutable_model()->set_family(long_family);
  const std::string message(ValidateRunConfig(config).message());
  CHECK(message.size() < 300);
  CHECK(message.find("(2097072 more bytes)") != std::string::npos);
}

TEST_CASE("Exit codes map to failure classes, out of memory retried", "[runspec][unit]") {
  CHECK(ExitCodeForStatus(absl::ResourceExhaustedError("oom")) == kExitOutOfMemory);
  CHECK(ExitCodeForStatus(absl::InvalidArgumentError("x")) == kExitInvalidSpec);
  CHECK(ExitCodeForStatus(absl::NotFoundError("x")) == kExitDataError);
  CHECK(ExitCodeForStatus(absl::AbortedError("x")) == kExitDiverged);
  CHECK(ExitCodeForStatus(absl::InternalError("x")) == kExitOtherError);
  TrainerExit exit;
  exit.exit_code = kExitOutOfMemory;
  CHECK(ClassifyExit(exit) == v1::FAILURE_CLASS_OUT_OF_MEMORY);
  exit.exit_code = kExitInvalidSpec;
  CHECK(ClassifyExit(exit) == v1::FAILURE_CLASS_USER);
}

}  // namespace
}  // namespace scalelab::runspec
