#include "model/train_options.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <string>

#include "model/metrics.h"
#include "model/trainer.h"

namespace scalelab::model {
namespace {

TrainOptions ValidOptions() {
  TrainOptions options;
  options.sources = {DataSource{"web", "/data/web", 1.0}};
  return options;
}

// Validate()'s message for `options`, or "" when valid.
std::string Problem(const TrainOptions& options) {
  absl::Status status = options.Validate();
  if (!status.ok()) CHECK(status.code() == absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

TEST_CASE("Default options with one source are valid", "[model]") {
  CHECK(ValidOptions().Validate().ok());
  CHECK(ValidOptions().NumSteps() == 245);  // ceil(1e6 / 4096)
  CHECK(ValidOptions().BatchSize() == 64);
  CHECK(ValidOptions().EffectiveDff() == 256);
}

TEST_CASE("Invalid options are rejected with the flag, the value and what was expected",
          "[model]") {
  TrainOptions options = ValidOptions();
  SECTION("no sources") {
    options.sources.clear();
    CHECK_THAT(Problem(options), Catch::Contains("--data_sources"));
  }
  SECTION("batch_tokens not a multiple of seq_len") {
    options.batch_tokens = 1000;
    CHECK_THAT(Problem(options), Catch::Contains("--batch_tokens=1000") &&
                                     Catch::Contains("multiple of --seq_len=64"));
  }
  SECTION("heads do not divide the width") {
    options.n_heads = 5;
    CHECK_THAT(Problem(options), Catch::Contains("--n_heads=5") && Catch::Contains("d_model"));
  }
  SECTION("unknown model family") {
    options.model_family = "mamba";
    CHECK_THAT(Problem(options), Catch::Contains("--model_family=mamba"));
  }
  SECTION("non-positive sizes") {
    options.d_model = 0;
    CHECK_THAT(Problem(options), Catch::Contains("--d_model=0"));
  }
  SECTION("vocabulary smaller than a byte") {
    options.vocab_size = 100;
    CHECK_THAT(Problem(options), Catch::Contains("--vocab_size=100"));
  }
  SECTION("warmup outside [0, 1]") {
    options.warmup = 1.5;
    CHECK_THAT(Problem(options), Catch::Contains("--warmup=1.5"));
  }
  SECTION("non-finite token budget") {
    options.tokens = std::nan("");
    CHECK_THAT(Problem(options), Catch::Contains("--tokens=nan"));
  }
  SECTION("unknown device") {
    options.device = "tpu";
    CHECK_THAT(Problem(options), Catch::Contains("--device=tpu"));
  }
  SECTION("zero threads") {
    options.threads = 0;
    CHECK_THAT(Problem(options), Catch::Contains("--threads=0"));
  }
  SECTION("all-zero mixture") {
    options.sources[0].weight = 0;
    CHECK_THAT(Problem(options), Catch::Contains("--data_mixture"));
  }
}

TEST_CASE("A name=value list parses in order with whitespace trimmed", "[model]") {
  auto pairs = ParseKeyValueList("data_sources", " web = /d/web ,code=/d/code");
  REQUIRE(pairs.ok());
  REQUIRE(pairs->size() == 2);
  CHECK((*pairs)[0] == std::make_pair(std::string("web"), std::string("/d/web")));
  CHECK((*pairs)[1] == std::make_pair(std::string("code"), std::string("/d/code")));
  CHECK(ParseKeyValueList("data_mixture", "")->empty());
}

TEST_CASE("A malformed name=value list is rejected naming the flag", "[model]") {
  for (const char* text : {"web", "web=", "=x", "a=1,,b=2", "a=1,a=2"}) {
    auto pairs = ParseKeyValueList("data_sources", text);
    INFO(text);
    REQUIRE_FALSE(pairs.ok());
    CHECK(pairs.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(pairs.status().message()), Catch::Contains("--data_sources"));
  }
}

TEST_CASE("A mixture sets a weight for every source and rejects strangers", "[model]") {
  auto sources = ParseDataSources("web=/d/web,code=/d/code");
  REQUIRE(sources.ok());
  REQUIRE(ApplyDataMixture("web=0.67,code=0.33", *sources).ok());
  CHECK((*sources)[0].weight == Approx(0.67));
  CHECK((*sources)[1].weight == Approx(0.33));

  CHECK_THAT(std::string(ApplyDataMixture("web=1,books=1", *sources).message()),
             Catch::Contains("\"books\" is not one"));
  CHECK_THAT(std::string(ApplyDataMixture("web=1", *sources).message()),
             Catch::Contains("\"code\" has none"));
  CHECK_THAT(std::string(ApplyDataMixture("web=-1,code=1", *sources).message()),
             Catch::Contains("--data_mixture"));
  CHECK_THAT(std::string(ApplyDataMixture("web=lots,code=1", *sources).message()),
             Catch::Contains("\"lots\""));
}

TEST_CASE("The schedule flag accepts cosine and constant only", "[model]") {
  CHECK(*ParseLrSchedule("cosine") == LrSchedule::kCosine);
  CHECK(*ParseLrSchedule("constant") == LrSchedule::kConstant);
  CHECK_THAT(std::string(ParseLrSchedule("linear").status().message()),
             Catch::Contains("--schedule=linear"));
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
}

TEST_CASE("Metrics encode as one JSON object with exact integers", "[model]") {
  CHECK(FormatMetricJson({12, 49152, "train_loss", 3.1234, 1.5}) ==
        R"({"step":12,"tokens":49152,"name":"train_loss","value":3.1234,"wall_time_s":1.5})");
  CHECK(FormatMetricJson({0, 0, "n_params", 1234567890.0, 0}) ==
        R"({"step":0,"tokens":0,"name":"n_params","value":1234567890,"wall_time_s":0})");
  CHECK_THAT(FormatMetricJson({1, 1, "lr", std::nan(""), 0}), Catch::Contains("\"value\":null"));
  CHECK_THAT(FormatMetricJson({1, 1, "val_loss/a\"b", 1, 0}),
             Catch::Contains(R"("name":"val_loss/a\"b")"));
}

TEST_CASE("Statuses map to the trainer's exit codes", "[model]") {
  CHECK(ExitCodeForStatus(absl::OkStatus()) == 0);
  CHECK(ExitCodeForStatus(absl::InvalidArgumentError("x")) == 2);
  CHECK(ExitCodeForStatus(absl::NotFoundError("x")) == 3);
  CHECK(ExitCodeForStatus(absl::OutOfRangeError("x")) == 3);
  CHECK(ExitCodeForStatus(absl::AbortedError("x")) == 4);
  CHECK(ExitCodeForStatus(absl::InternalError("x")) == 1);
}

}  // namespace
}  // namespace scalelab::model
