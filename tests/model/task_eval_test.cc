// EvaluateTasks (model/task_eval.h): pass@k of a model on a task set or a suite, through real
// generation, with models whose answers are known (tests/model/oracle_lm.h).

#include "model/task_eval.h"

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "model/task_set.h"
#include "tests/model/oracle_lm.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::OracleLM;
using testing::TempDir;

v1::TaskSetSpec AdditionSpec() {
  v1::TaskSetSpec spec;
  spec.set_generator("addition");
  spec.set_digits(2);
  spec.set_seed(1);
  return spec;
}

// A TaskEvalSpec with runspec's defaults for what the test leaves out.
v1::TaskEvalSpec EvalSpec(int problems, int samples, std::vector<int> ks) {
  v1::TaskEvalSpec spec;
  *spec.mutable_tasks() = AdditionSpec();
  spec.set_split("test");
  spec.set_problems(problems);
  spec.set_samples(samples);
  for (int k : ks) spec.add_k(k);
  spec.set_temperature(1.0);
  spec.set_max_new_tokens(8);
  spec.set_bootstrap(200);
  return spec;
}

// question -> answer for the first `count` problems of the split, or a wrong answer for each.
std::map<std::string, std::string> Answers(const v1::TaskSetSpec& tasks, tasks::Split split,
                                           int count, bool right) {
  absl::StatusOr<TaskSet> set = TaskSet::Open(tasks);
  REQUIRE(set.ok());
  absl::StatusOr<std::vector<tasks::Problem>> problems = set->Problems(split, 0, count);
  REQUIRE(problems.ok());
  std::map<std::string, std::string> answers;
  for (const tasks::Problem& problem : *problems) {
    answers[problem.question] = right ? problem.answer : problem.answer + "1";
  }
  return answers;
}

TEST_CASE("A model that always answers right has pass@k 1 and one that never does has 0",
          "[model][tasks]") {
  const v1::TaskEvalSpec spec = EvalSpec(8, 4, {1, 2, 4});
  for (bool right : {true, false}) {
    OracleLM model(Answers(AdditionSpec(), tasks::Split::kTest, 8, right));
    VectorMetricSink sink;
    absl::StatusOr<TaskEvalSummary> summary = EvaluateTasks(model, spec, nullptr, 5, 7, sink);
    REQUIRE(summary.ok());
    const double expected = right ? 1.0 : 0.0;
    CHECK(summary->pass_at_k ==
          std::map<int32_t, double>{{1, expected}, {2, expected}, {4, expected}});
    REQUIRE(sink.evals().size() == 3);
    for (const v1::EvalResult& result : sink.evals()) {
      CHECK(result.value() == expected);
      CHECK(result.low() == expected);
      CHECK(result.high() == expected);
    }
    // "83" or "831": the answer's digits; the stop marker is never counted.
    CHECK(summary->mean_completion_tokens >= 1);
    CHECK(summary->mean_completion_tokens <= 4);
  }
}

TEST_CASE("Evaluation writes one result per k named by task set, split, step and counts",
          "[model][tasks]") {
  v1::TaskEvalSpec spec = EvalSpec(6, 3, {});  // k empty: {1, samples}
  spec.set_split("held_out");
  OracleLM model(Answers(AdditionSpec(), tasks::Split::kHeldOut, 6, true));
  VectorMetricSink sink;
  absl::StatusOr<TaskEvalSummary> summary = EvaluateTasks(model, spec, nullptr, 12, 1, sink);
  REQUIRE(summary.ok());
  CHECK(summary->task_set == "addition-digits=2");
  CHECK(summary->split == "held_out");
  CHECK(summary->problems == 6);
  CHECK(summary->samples == 3);
  REQUIRE(sink.evals().size() == 2);
  for (size_t idx = 0; idx < 2; ++idx) {
    const v1::EvalResult& result = sink.evals()[idx];
    CHECK(result.task_set() == "addition-digits=2");
    CHECK(result.split() == "held_out");
    CHECK(result.category().empty());
    CHECK(result.metric() == "pass@k");
    CHECK(result.step() == 12);
    CHECK(result.n() == 3);
    CHECK(result.k() == (idx == 0 ? 1 : 3));
    CHECK(result.problems() == 6);
  }

  // Without a bootstrap there is no interval.
  spec.set_bootstrap(0);
  VectorMetricSink plain;
  REQUIRE(EvaluateTasks(model, spec, nullptr, 12, 1, plain).ok());
  CHECK_FALSE(plain.evals().front().has_low());
}

TEST_CASE("Sampled evaluation is a function of the seed and the step", "[model][tasks]") {
  const v1::TaskEvalSpec spec = EvalSpec(32, 4, {1, 4});
  OracleLM model(Answers(AdditionSpec(), tasks::Split::kTest, 32, true), /*coin=*/true);
  auto run = [&](uint64_t seed, int64_t step) {
    VectorMetricSink sink;
    absl::StatusOr<TaskEvalSummary> summary = EvaluateTasks(model, spec, nullptr, step, seed, sink);
    REQUIRE(summary.ok());
    return summary->pass_at_k;
  };
  const std::map<int32_t, double> first = run(3, 0);
  CHECK(first == run(3, 0));
  CHECK(first != run(4, 0));
  CHECK(first != run(3, 10));
  // About half the samples are right: pass@1 near 0.5, pass@4 near 1 - 1/16.
  CHECK(first.at(1) > 0.25);
  CHECK(first.at(1) < 0.75);
  CHECK(first.at(4) > first.at(1));
  // eval.tasks.seed wins over the run's seed.
  v1::TaskEvalSpec seeded = spec;
  seeded.set_seed(3);
  VectorMetricSink sink;
  absl::StatusOr<TaskEvalSummary> summary = EvaluateTasks(model, seeded, nullptr, 0, 99, sink);
  REQUIRE(summary.ok());
  CHECK(summary->pass_at_k == first);
}

TEST_CASE("An evaluation without its own task set uses the run's, and fails without any",
          "[model][tasks]") {
  v1::TaskEvalSpec spec = EvalSpec(4, 1, {1});
  spec.clear_tasks();
  OracleLM model(Answers(AdditionSpec(), tasks::Split::kTest, 4, true));
  VectorMetricSink sink;
  absl::StatusOr<TaskEvalSummary> none = EvaluateTasks(model, spec, nullptr, 0, 1, sink);
  REQUIRE(absl::IsInvalidArgument(none.status()));
  CHECK_THAT(std::string(none.status().message()), Catch::Contains("eval.tasks"));

  absl::StatusOr<TaskSet> run_tasks = TaskSet::Open(AdditionSpec());
  REQUIRE(run_tasks.ok());
  absl::StatusOr<TaskEvalSummary> summary = EvaluateTasks(model, spec, &*run_tasks, 0, 1, sink);
  REQUIRE(summary.ok());
  CHECK(summary->task_set == "addition-digits=2");
  CHECK(summary->pass_at_k.at(1) == 1.0);
}

TEST_CASE("A task set of several families reports each family as a category", "[model][tasks]") {
  TempDir dir;
  const std::string path = dir.Write(
      "mixed.jsonl",
      "{\"question\": \"1+1=\", \"answer\": 2, \"split\": \"test\", \"family\": \"addition\"}\n"
      "{\"question\": \"2+5=\", \"answer\": 7, \"split\": \"test\", \"family\": \"addition\"}\n"
      "{\"question\": \"3*3=\", \"answer\": 9, \"split\": \"test\", \"family\": \"mult\"}\n");
  v1::TaskEvalSpec spec = EvalSpec(3, 2, {1});
  spec.mutable_tasks()->Clear();
  spec.mutable_tasks()->set_path(path);
  spec.mutable_tasks()->set_compare("numeric");
  spec.mutable_tasks()->set_extract("last_number");
  // Right on additions, wrong on the product.
  OracleLM model({{"1+1=", "2"}, {"2+5=", "7"}, {"3*3=", "6"}});
  VectorMetricSink sink;
  absl::StatusOr<TaskEvalSummary> summary = EvaluateTasks(model, spec, nullptr, 0, 1, sink);
  REQUIRE(summary.ok());
  REQUIRE(sink.evals().size() == 3);
  CHECK(sink.evals()[0].category().empty());
  CHECK(sink.evals()[0].value() == Approx(2.0 / 3.0));
  CHECK(sink.evals()[1].category() == "addition");
  CHECK(sink.evals()[1].value() == 1.0);
  CHECK(sink.evals()[1].problems() == 2);
  CHECK(sink.evals()[2].category() == "mult");
  CHECK(sink.evals()[2].value() == 0.0);
}

TEST_CASE("A suite is scored per category and graded against its reference", "[model][tasks]") {
  TempDir dir;
  const std::string path = dir.Write("suite.yaml", R"(suite: tiny-arith
categories:
  - name: addition
    templates:
      - question: "{a}+{b}="
        answer: "{a+b}"
        slots: {a: [1, 2], b: [3, 4]}
  - name: multiplication
    templates:
      - question: "{a}*{b}="
        answer: "{a*b}"
        slots: {a: [2, 3], b: [5]}
reference:
  run: ref
  wrong_rate: {addition: 0.5, multiplication: 0.5}
)");
  v1::TaskEvalSpec spec = EvalSpec(4, 2, {1});
  spec.clear_tasks();
  spec.set_suite(path);
  // Every addition right; one of the two products wrong.
  OracleLM model(
      {{"1+3=", "4"}, {"1+4=", "5"}, {"2+3=", "5"}, {"2+4=", "6"}, {"2*5=", "10"}, {"3*5=", "14"}});
  VectorMetricSink sink;
  absl::StatusOr<TaskEvalSummary> summary = EvaluateTasks(model, spec, nullptr, 0, 1, sink);
  REQUIRE(summary.ok());
  CHECK(summary->task_set == "tiny-arith");
  CHECK(summary->problems == 6);
  std::map<std::string, double> values;  // "<category>/<metric>" -> value
  for (const v1::EvalResult& result : sink.evals()) {
    CHECK(result.task_set() == "tiny-arith");
    values[result.category() + "/" + result.metric()] = result.value();
  }
  CHECK(values.at("/pass@k") == Approx(5.0 / 6.0));
  CHECK(values.at("addition/pass@k") == 1.0);
  CHECK(values.at("addition/accuracy") == 1.0);
  CHECK(values.at("multiplication/accuracy") == 0.5);
  // Wrong rate 0 < 0.001: L (5); 0.5 against a reference of 0.5 is under 2 x: M (3); overall
  // the worst.
  CHECK(values.at("addition/grade") == 5);
  CHECK(values.at("multiplication/grade") == 3);
  CHECK(values.at("/grade") == 3);
}

}  // namespace
}  // namespace scalelab::model
