// The spec path of scalelab-train without training: spec file + overrides -> validated RunSpec
// -> TrainPlan, the learning-rate schedule, the stdout encoding and the run-kind dispatch.

#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "model/loops/loop.h"
#include "model/lr_schedule.h"
#include "model/metrics.h"
#include "model/spec_loader.h"
#include "model/train_plan.h"
#include "runspec/exit_codes.h"
#include "runspec/spec_file.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::TempDir;

constexpr char kSpecYaml[] = R"(kind: RUN_KIND_PRETRAIN
config:
  model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 64}
  data:
    sources: {web: /data/web, code: /data/code}
    mixture: {web: 3, code: 1}
  train: {tokens: 1e6, batch_tokens: 4096, lr: 3e-3, warmup: 0.1}
)";

absl::StatusOr<v1::RunSpec> Prepare(const std::string& yaml, const SpecOverrides& overrides = {}) {
  absl::StatusOr<v1::RunSpec> spec = runspec::ParseRunSpec(yaml, "spec.yaml");
  if (!spec.ok()) return spec.status();
  return PrepareRunSpec(*std::move(spec), overrides);
}

TEST_CASE("A spec file gets runspec's defaults and a plan derived from it", "[model]") {
  TempDir dir;
  const std::string path = dir.Write("spec.yaml", kSpecYaml);
  absl::StatusOr<v1::RunSpec> spec = LoadRunSpec(path, {});
  REQUIRE(spec.ok());
  CHECK(spec->attempt() == 1);
  CHECK(spec->execution().device() == "cpu");
  CHECK(spec->config().model().vocab_size() == 256);

  const TrainPlan plan = PlanFor(*spec);
  CHECK(plan.steps == 245);  // ceil(1e6 / 4096)
  CHECK(plan.batch_size == 64);
  CHECK(plan.schedule == LrSchedule::kCosine);
  CHECK(plan.val_windows == 1024);       // ceil(65536 / 64)
  CHECK(plan.eval_every_tokens == 1e5);  // train.tokens / 10
  REQUIRE(plan.sources.size() == 2);
  CHECK(plan.sources[0].name == "code");  // sorted by name
  CHECK(plan.sources[0].weight == Approx(0.25));
  CHECK(plan.sources[1].dir == "/data/web");
  CHECK(plan.sources[1].weight == Approx(0.75));
  CHECK_FALSE(plan.cuda);
  CHECK(plan.threads == 1);
}

TEST_CASE("Overrides apply in order before defaults and validation", "[model]") {
  SpecOverrides overrides;
  overrides.set = {"model.seq_len=32", "train.tokens=2e4", "train.tokens=8192",
                   "data.sources.web=relative/web"};
  overrides.threads = 3;
  absl::StatusOr<v1::RunSpec> spec = Prepare(kSpecYaml, overrides);
  REQUIRE(spec.ok());
  CHECK(spec->config().model().seq_len() == 32);
  CHECK(spec->config().train().tokens() == 8192);
  CHECK(spec->execution().threads() == 3);
  // Relative folders are resolved against the current directory.
  const std::string& web = spec->config().data().sources().at("web");
  CHECK(web.front() == '/');
  CHECK_THAT(web, Catch::EndsWith("/relative/web"));
  CHECK(PlanFor(*spec).steps == 2);
}

TEST_CASE("A bad override or an invalid spec is refused naming the flag or field with exit 2",
          "[model]") {
  auto message_of = [](const absl::StatusOr<v1::RunSpec>& spec) {
    REQUIRE_FALSE(spec.ok());
    CHECK(runspec::ExitCodeForStatus(spec.status()) == runspec::kExitInvalidSpec);
    return std::string(spec.status().message());
  };
  SpecOverrides overrides;
  SECTION("a value of the wrong type") {
    overrides.set = {"model.d_model=big"};
    CHECK_THAT(
        message_of(Prepare(kSpecYaml, overrides)),
        Catch::StartsWith("--set=model.d_model=big: model.d_model") && Catch::Contains("\"big\""));
  }
  SECTION("an unknown key") {
    overrides.set = {"model.d_modle=3"};
    CHECK_THAT(message_of(Prepare(kSpecYaml, overrides)),
               Catch::StartsWith("--set=model.d_modle=3:") && Catch::Contains("d_modle"));
  }
  SECTION("no '='") {
    overrides.set = {"lr"};
    CHECK_THAT(message_of(Prepare(kSpecYaml, overrides)),
               Catch::StartsWith("--set=lr: expected key=value"));
  }
  SECTION("an override that breaks a rule") {
    overrides.set = {"train.batch_tokens=1000"};
    CHECK_THAT(message_of(Prepare(kSpecYaml, overrides)),
               Catch::Contains("train.batch_tokens") && Catch::Contains("1000") &&
                   Catch::Contains("(with overrides --set=train.batch_tokens=1000)"));
  }
  SECTION("an unknown device") {
    overrides.device = "tpu";
    CHECK_THAT(message_of(Prepare(kSpecYaml, overrides)),
               Catch::Contains("execution.device") && Catch::Contains("--device=tpu"));
  }
  SECTION("a spec that breaks a rule by itself") {
    std::string yaml = kSpecYaml;
    yaml.replace(yaml.find("n_heads: 4"), 10, "n_heads: 5");
    CHECK_THAT(message_of(Prepare(yaml)), Catch::Contains("model.d_model"));
  }
  SECTION("a missing spec file") {
    absl::StatusOr<v1::RunSpec> spec = LoadRunSpec("/nonexistent/spec.yaml", {});
    REQUIRE_FALSE(spec.ok());
    CHECK_THAT(std::string(spec.status().message()), Catch::Contains("/nonexistent/spec.yaml"));
  }
}

TEST_CASE("Every run kind has a loop; an unknown kind has none", "[model]") {
  for (v1::RunKind kind :
       {v1::RUN_KIND_PRETRAIN, v1::RUN_KIND_SFT, v1::RUN_KIND_GRPO, v1::RUN_KIND_EVAL}) {
    CHECK(LoopForKind(kind).ok());
  }
  for (v1::RunKind kind : {v1::RUN_KIND_UNSPECIFIED, static_cast<v1::RunKind>(99)}) {
    absl::StatusOr<LoopFn> loop = LoopForKind(kind);
    REQUIRE_FALSE(loop.ok());
    CHECK(loop.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(loop.status().message()),
               Catch::Contains(absl::StrCat("got ", static_cast<int>(kind))));
  }
}

TEST_CASE("The learning rate warms up linearly then decays to a tenth by cosine", "[model]") {
  // 100 steps, 10 of warmup.
  CHECK(LearningRateAt(0, 100, 1.0, 0.1, LrSchedule::kCosine) == Approx(0.1));
  CHECK(LearningRateAt(9, 100, 1.0, 0.1, LrSchedule::kCosine) == Approx(1.0));
  CHECK(LearningRateAt(10, 100, 1.0, 0.1, LrSchedule::kCosine) == Approx(1.0));
  CHECK(LearningRateAt(99, 100, 1.0, 0.1, LrSchedule::kCosine) == Approx(0.1));
  const double middle = LearningRateAt(54, 100, 1.0, 0.1, LrSchedule::kCosine);
  CHECK(middle < 1.0);
  CHECK(middle > 0.1);
  CHECK(LearningRateAt(99, 100, 1.0, 0.1, LrSchedule::kConstant) == Approx(1.0));
  CHECK(LearningRateAt(0, 1, 2.0, 0.0, LrSchedule::kCosine) == Approx(0.2));
  CHECK(LrScheduleFromName("constant") == LrSchedule::kConstant);
}

TEST_CASE("Metrics and artifacts encode as one JSON object each", "[model]") {
  CHECK(FormatMetricJson({12, 49152, "train_loss", 3.1234, 1.5}) ==
        R"({"step":12,"tokens":49152,"name":"train_loss","value":3.1234,"wall_time_s":1.5})");
  CHECK(FormatMetricJson({0, 0, "n_params", 1234567890.0, 0}) ==
        R"({"step":0,"tokens":0,"name":"n_params","value":1234567890,"wall_time_s":0})");
  CHECK_THAT(FormatMetricJson({1, 1, "lr", std::nan(""), 0}), Catch::Contains("\"value\":null"));
  CHECK_THAT(FormatMetricJson({1, 1, "val_loss/a\"b", 1, 0}),
             Catch::Contains(R"("name":"val_loss/a\"b")"));
  CHECK(FormatArtifactJson({"final", "/runs/7/final.pt", 245}) ==
        R"({"artifact":"final","path":"/runs/7/final.pt","step":245})");
}

TEST_CASE("A run record encodes as one JSON object with exact counts", "[model]") {
  v1::RunRecord record;
  record.set_family("transformer");
  record.set_n_params(1234567890123);
  record.set_n_params_total(1334567890123);
  record.set_flops_per_token(7.5e12);
  record.set_tokens(2e11);
  record.set_flops(7.5e12 * 2e11);
  CHECK(FormatRecordJson(record) ==
        R"({"record":"run","family":"transformer","n_params":1234567890123,)"
        R"("n_params_total":1334567890123,"flops_per_token":7500000000000,"tokens":200000000000,)"
        R"("flops":1.5e+24})");
}

TEST_CASE("Out of memory exits with the retried code, bad specs with 2", "[model]") {
  CHECK(runspec::ExitCodeForStatus(absl::ResourceExhaustedError("x")) == 5);
  CHECK(runspec::ExitCodeForStatus(absl::InvalidArgumentError("x")) == 2);
  CHECK(runspec::ExitCodeForStatus(absl::UnimplementedError("x")) == 1);
}

}  // namespace
}  // namespace scalelab::model
