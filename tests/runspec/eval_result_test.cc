// The rules of an evaluation result (runspec/eval_result.h): each bad field is refused with an
// error naming it, a batch names the bad result's index, and good results pass.
#include "runspec/eval_result.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

namespace scalelab::runspec {
namespace {

v1::EvalResult Good() {
  v1::EvalResult eval;
  eval.set_step(200);
  eval.set_task_set("addition-3d");
  eval.set_split("test");
  eval.set_metric("pass@k");
  eval.set_n(16);
  eval.set_k(4);
  eval.set_value(0.8125);
  eval.set_low(0.75);
  eval.set_high(0.875);
  eval.set_problems(200);
  return eval;
}

// The message of the refusal, which must be InvalidArgument.
std::string Refusal(const v1::EvalResult& eval) {
  absl::Status status = ValidateEvalResult(eval);
  REQUIRE(absl::IsInvalidArgument(status));
  return std::string(status.message());
}

TEST_CASE("A complete pass@k result, one without an interval and a grade above 1 are accepted",
          "[runspec]") {
  CHECK(ValidateEvalResult(Good()).ok());
  v1::EvalResult no_interval = Good();
  no_interval.clear_low();
  no_interval.clear_high();
  CHECK(ValidateEvalResult(no_interval).ok());
  v1::EvalResult grade = Good();
  grade.set_metric("grade");
  grade.set_category("sorting");
  grade.set_n(1);
  grade.set_k(1);
  grade.set_value(4);
  grade.set_low(3);
  grade.set_high(5);
  CHECK(ValidateEvalResult(grade).ok());
  v1::EvalResult edges = Good();  // k = n, value at both ends of its interval
  edges.set_k(16);
  edges.set_value(1);
  edges.set_low(1);
  edges.set_high(1);
  CHECK(ValidateEvalResult(edges).ok());
}

TEST_CASE("Each bad field of an evaluation result is refused naming the field", "[runspec]") {
  struct Case {
    const char* what;
    void (*spoil)(v1::EvalResult&);
    const char* expected;
  };
  const Case cases[] = {
      {"n = 0", [](v1::EvalResult& e) { e.set_n(0); },
       "n: expected >= 1 samples per problem, got 0"},
      {"k = 0", [](v1::EvalResult& e) { e.set_k(0); }, "k: expected 1 <= k <= n (n = 16), got 0"},
      {"k > n", [](v1::EvalResult& e) { e.set_k(17); }, "k: expected 1 <= k <= n (n = 16), got 17"},
      {"value > 1", [](v1::EvalResult& e) { e.set_value(1.5); },
       "value: expected a fraction in [0, 1] for pass@k, got 1.5"},
      {"accuracy < 0",
       [](v1::EvalResult& e) {
         e.set_metric("accuracy");
         e.set_value(-0.1);
         e.clear_low();
         e.clear_high();
       },
       "value: expected a fraction in [0, 1] for accuracy, got -0.1"},
      {"value NaN", [](v1::EvalResult& e) { e.set_value(std::nan("")); },
       "value: expected a finite number"},
      {"grade infinite",
       [](v1::EvalResult& e) {
         e.set_metric("grade");
         e.set_value(std::numeric_limits<double>::infinity());
       },
       "value: expected a finite number, got inf"},
      {"low > value", [](v1::EvalResult& e) { e.set_low(0.9); },
       "low, high: expected low <= value <= high, got 0.9 <= 0.8125 <= 0.875"},
      {"high < value", [](v1::EvalResult& e) { e.set_high(0.8); },
       "low, high: expected low <= value <= high"},
      {"low only", [](v1::EvalResult& e) { e.clear_high(); },
       "high: expected both ends of the interval or neither"},
      {"high only", [](v1::EvalResult& e) { e.clear_low(); },
       "low: expected both ends of the interval or neither"},
      {"empty task_set", [](v1::EvalResult& e) { e.set_task_set(""); },
       "task_set: expected a name, got \"\""},
      {"empty split", [](v1::EvalResult& e) { e.set_split(""); },
       "split: expected a name, got \"\""},
      {"empty metric", [](v1::EvalResult& e) { e.set_metric(""); },
       "metric: expected a name, got \"\""},
      {"long task_set", [](v1::EvalResult& e) { e.set_task_set(std::string(129, 't')); },
       "task_set: expected at most 128 bytes, got 129 bytes"},
      {"long category", [](v1::EvalResult& e) { e.set_category(std::string(5000, 'c')); },
       "category: expected at most 128 bytes, got 5000 bytes"},
      {"newline in split", [](v1::EvalResult& e) { e.set_split("te\nst"); },
       "split: expected printable text without control characters, got \"te\\nst\""},
      {"negative step", [](v1::EvalResult& e) { e.set_step(-1); }, "step: expected >= 0, got -1"},
      {"negative problems", [](v1::EvalResult& e) { e.set_problems(-3); },
       "problems: expected >= 0, got -3"},
  };
  for (const Case& c : cases) {
    v1::EvalResult eval = Good();
    c.spoil(eval);
    INFO(c.what);
    const std::string message = Refusal(eval);
    INFO(message);
    CHECK(message.rfind(c.expected, 0) == 0);
    CHECK(message.size() < 300);  // a 5000-byte name is not echoed whole
  }
}

TEST_CASE("A batch names its first bad result by index and refuses too many results", "[runspec]") {
  google::protobuf::RepeatedPtrField<v1::EvalResult> batch;
  *batch.Add() = Good();
  *batch.Add() = Good();
  batch.Mutable(1)->set_k(99);
  absl::Status status = ValidateEvalResults(batch);
  REQUIRE(absl::IsInvalidArgument(status));
  CHECK(status.message() == "evals[1].k: expected 1 <= k <= n (n = 16), got 99");

  batch.Mutable(1)->set_k(2);
  CHECK(ValidateEvalResults(batch).ok());
  while (batch.size() <= kMaxEvalsPerReport) *batch.Add() = Good();
  status = ValidateEvalResults(batch);
  REQUIRE(absl::IsInvalidArgument(status));
  CHECK(status.message() == "evals: expected at most 4096 results a report, got 4097");
}

}  // namespace
}  // namespace scalelab::runspec
