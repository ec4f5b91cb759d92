// Both ends of the trainer -> worker line for evaluation results: what model/metrics.h prints
// (FormatEvalJson) is what worker/trainer_command.h reads back (ParseTrainerLine), and lines
// that break the rules are refused naming the field. model/metrics.cc is torch-free and is
// compiled into this test directly, so the worker's tests still need no LibTorch.
#include <catch2/catch.hpp>
#include <limits>
#include <string>

#include "google/protobuf/util/message_differencer.h"
#include "model/metrics.h"
#include "worker/trainer_command.h"

namespace scalelab::worker {
namespace {

v1::EvalResult Result() {
  v1::EvalResult eval;
  eval.set_step(200);
  eval.set_task_set("addition-3d");
  eval.set_split("test");
  eval.set_category("carry \"tens\"");  // quotes survive the round trip
  eval.set_metric("pass@k");
  eval.set_n(16);
  eval.set_k(4);
  eval.set_value(0.8125);
  eval.set_low(0.75);
  eval.set_high(0.875);
  eval.set_problems(200);
  return eval;
}

TEST_CASE("An evaluation result printed by the trainer parses back unchanged", "[worker][unit]") {
  const v1::EvalResult sent = Result();
  const std::string line = model::FormatEvalJson(sent);
  CHECK(line ==
        "{\"eval\":\"pass@k\",\"step\":200,\"task_set\":\"addition-3d\",\"split\":\"test\","
        "\"category\":\"carry \\\"tens\\\"\",\"n\":16,\"k\":4,\"value\":0.8125,\"low\":0.75,"
        "\"high\":0.875,\"problems\":200}");
  auto parsed = ParseTrainerLine(line);
  REQUIRE(parsed.ok());
  REQUIRE(parsed->eval.has_value());
  CHECK_FALSE(parsed->metric.has_value());
  CHECK_FALSE(parsed->record.has_value());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(*parsed->eval, sent));

  v1::EvalResult no_interval = Result();
  no_interval.clear_low();
  no_interval.clear_high();
  no_interval.set_category("");
  no_interval.set_value(1.0 / 3.0);  // printed to 9 significant digits
  auto plain = ParseTrainerLine(model::FormatEvalJson(no_interval));
  REQUIRE(plain.ok());
  REQUIRE(plain->eval.has_value());
  CHECK_FALSE(plain->eval->has_low());
  CHECK_FALSE(plain->eval->has_high());
  CHECK(plain->eval->category().empty());
  CHECK(plain->eval->value() == Approx(1.0 / 3.0).epsilon(1e-8));

  // An interval the trainer could not compute (NaN) prints as null: the result has none.
  v1::EvalResult nan_interval = Result();
  nan_interval.set_low(std::numeric_limits<double>::quiet_NaN());
  nan_interval.set_high(std::numeric_limits<double>::quiet_NaN());
  auto without = ParseTrainerLine(model::FormatEvalJson(nan_interval));
  REQUIRE(without.ok());
  CHECK_FALSE(without->eval->has_low());

  // A metric point named "eval" stays a metric point: the key decides.
  auto metric = ParseTrainerLine(
      "{\"step\":1,\"tokens\":10,\"name\":\"eval\",\"value\":2,\"wall_time_s\":0.5}");
  REQUIRE(metric.ok());
  CHECK(metric->metric.has_value());
}

TEST_CASE("An evaluation line that breaks the rules is refused naming the field",
          "[worker][unit]") {
  struct Case {
    std::string line;
    std::string expected;
  };
  const Case cases[] = {
      {"{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"t\",\"split\":\"test\",\"n\":4,\"k\":5,"
       "\"value\":0.5,\"problems\":3}",
       "trainer output: evaluation result: k: expected 1 <= k <= n (n = 4), got 5"},
      {"{\"eval\":\"accuracy\",\"step\":1,\"task_set\":\"t\",\"split\":\"test\",\"n\":1,\"k\":1,"
       "\"value\":1.25,\"problems\":3}",
       "trainer output: evaluation result: value: expected a fraction in [0, 1] for accuracy, "
       "got 1.25"},
      {"{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"t\",\"split\":\"test\",\"n\":4,\"k\":1,"
       "\"value\":null,\"problems\":3}",
       "trainer output: evaluation result \"value\": expected a finite number, got null or "
       "nothing"},
      {"{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"\",\"split\":\"test\",\"n\":4,\"k\":1,"
       "\"value\":0.5,\"problems\":3}",
       "trainer output: evaluation result: task_set: expected a name, got \"\""},
      {"{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"t\",\"split\":7,\"n\":4,\"k\":1,"
       "\"value\":0.5,\"problems\":3}",
       "trainer output: evaluation result \"split\": expected a string, got 7"},
      {"{\"eval\":\"pass@k\",\"step\":1.5,\"task_set\":\"t\",\"split\":\"test\",\"n\":4,\"k\":1,"
       "\"value\":0.5,\"problems\":3}",
       "trainer output: evaluation result \"step\": expected a whole number >= 0, got 1.5"},
      {"{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"t\",\"split\":\"test\",\"n\":4,\"k\":1,"
       "\"value\":0.5,\"low\":0.4,\"problems\":3}",
       "trainer output: evaluation result: expected both \"low\" and \"high\" or neither"},
      {"{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"t\",\"split\":\"test\",\"n\":4e9,\"k\":1,"
       "\"value\":0.5,\"problems\":3}",
       "trainer output: evaluation result \"n\": expected at most 1073741824, got 4000000000"},
  };
  for (const Case& c : cases) {
    INFO(c.line);
    auto parsed = ParseTrainerLine(c.line);
    REQUIRE(absl::IsInvalidArgument(parsed.status()));
    CHECK(parsed.status().message() == c.expected);
  }
}

}  // namespace
}  // namespace scalelab::worker
