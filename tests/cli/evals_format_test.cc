// `scalelab evals` formatting without a scheduler: the table with and without attempts, the tidy
// CSV and JSON records, and the options it refuses.
#include <catch2/catch.hpp>
#include <map>
#include <sstream>
#include <string>

#include "services/cli/evals.h"
#include "services/cli/export.h"

namespace scalelab::cli {
namespace {

v1::GetEvalsResponse Answer() {
  v1::GetEvalsResponse response;
  v1::EvalResult* whole = response.add_evals();
  whole->set_run_id(12);
  whole->set_attempt(2);
  whole->set_step(1000);
  whole->set_task_set("gsm8k, small");  // a comma: quoted in CSV
  whole->set_split("test");
  whole->set_metric("pass@k");
  whole->set_n(64);
  whole->set_k(16);
  whole->set_value(0.71234);
  whole->set_low(0.6543);
  whole->set_high(0.76);
  whole->set_problems(250);
  v1::EvalResult* grade = response.add_evals();
  grade->set_run_id(12);
  grade->set_attempt(2);
  grade->set_step(1000);
  grade->set_task_set("arithmetic-v0");
  grade->set_split("test");
  grade->set_category("sorting");
  grade->set_metric("grade");
  grade->set_n(1);
  grade->set_k(1);
  grade->set_value(4);
  grade->set_problems(30);
  return response;
}

TEST_CASE("evals prints a table with intervals, the whole-set category as (all)", "[cli]") {
  std::ostringstream out;
  PrintEvalsTable(out, Answer(), false);
  CHECK(
      out.str() ==
      "RUN  STEP  TASK_SET       SPLIT  CATEGORY  METRIC  K   VALUE [LOW, HIGH]      N   PROBLEMS\n"
      "12   1000  gsm8k, small   test   (all)     pass@k  16  0.7123 [0.6543, 0.76]  64  250\n"
      "12   1000  arithmetic-v0  test   sorting   grade   1   4                      1   30\n");
  std::ostringstream with_attempt;
  PrintEvalsTable(with_attempt, Answer(), true);
  CHECK(with_attempt.str().rfind("RUN  ATTEMPT  STEP", 0) == 0);
  CHECK(with_attempt.str().find("\n12   2        1000") != std::string::npos);
}

TEST_CASE("evals of a sweep name each run's stage in the table and the records", "[cli]") {
  const std::map<int64_t, std::string> stages = {{12, "grpo"}};
  std::ostringstream out;
  PrintEvalsTable(out, Answer(), false, &stages);
  CHECK(out.str().rfind("RUN  STAGE  STEP  TASK_SET", 0) == 0);
  CHECK(out.str().find("\n12   grpo   1000  gsm8k, small") != std::string::npos);
  std::ostringstream csv;
  WriteCsv(csv, EvalTable(Answer(), &stages));
  CHECK(csv.str().rfind("run_id,stage,attempt,step,", 0) == 0);
  CHECK(csv.str().find("\n12,grpo,2,1000,") != std::string::npos);
  // A run the listing did not have (it cannot happen within one sweep, but says so if it does).
  const std::map<int64_t, std::string> none;
  std::ostringstream unknown;
  PrintEvalsTable(unknown, Answer(), false, &none);
  CHECK(unknown.str().find("\n12   ?      1000") != std::string::npos);
}

TEST_CASE("evals writes tidy CSV and JSON records, empty or null without an interval", "[cli]") {
  std::ostringstream csv;
  WriteCsv(csv, EvalTable(Answer()));
  CHECK(csv.str() ==
        "run_id,attempt,step,task_set,split,category,metric,n,k,value,low,high,problems\n"
        "12,2,1000,\"gsm8k, small\",test,,pass@k,64,16,0.71234,0.6543,0.76,250\n"
        "12,2,1000,arithmetic-v0,test,sorting,grade,1,1,4,,,30\n");
  std::ostringstream json;
  WriteJson(json, EvalTable(Answer()));
  CHECK(json.str().find("\"category\": \"sorting\", \"metric\": \"grade\", \"n\": 1, \"k\": 1, "
                        "\"value\": 4, \"low\": null, \"high\": null, \"problems\": 30}") !=
        std::string::npos);
}

TEST_CASE("evals refuses both or neither id and an unknown format", "[cli]") {
  EvalsOptions options;
  CHECK(options.Validate().message() ==
        "expected one run id or one sweep id, got run 0 and sweep 0");
  options.run_id = 3;
  options.sweep_id = 4;
  CHECK(absl::IsInvalidArgument(options.Validate()));
  options.sweep_id = 0;
  CHECK(options.Validate().ok());
  options.format = "xml";
  CHECK(options.Validate().message() == "--format: expected table, csv or json, got \"xml\"");
}

}  // namespace
}  // namespace scalelab::cli
