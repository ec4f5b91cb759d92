// `scalelab evals run RUN | sweep SWEEP`: a run's or a sweep's evaluation results (pass@k,
// accuracy, grades) as a table, CSV or JSON records. The formatting is pure (tested without a
// scheduler); Evals makes the one GetEvals call.
#ifndef SCALELAB_SERVICES_CLI_EVALS_H_
#define SCALELAB_SERVICES_CLI_EVALS_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "scalelab/v1/results.pb.h"
#include "services/cli/commands.h"
#include "services/cli/export.h"

namespace scalelab::cli {

struct EvalsOptions {
  int64_t run_id = 0;  // exactly one of run_id and sweep_id
  int64_t sweep_id = 0;
  // table | csv | json ("" = table, or the GetEvals answer as proto JSON with --output=json).
  std::string format;
  std::string task_set;       // "" = every task set
  std::string split;          // "" = every split
  std::string metric;         // "" = every metric
  bool all_attempts = false;  // every attempt's results, not only the latest attempt's
  absl::Status Validate() const;
};

// One row per result in the answer's order (run, step, task set, split, category, metric, k):
// run_id, attempt, step, task_set, split, category, metric, n, k, value, low, high (missing
// when there is no interval), problems.
// With `stages` (run id -> stage name, as `evals sweep` fetches it), a "stage" column follows
// run_id.
TidyTable EvalTable(const v1::GetEvalsResponse& response,
                    const std::map<int64_t, std::string>* stages = nullptr);

// RUN STEP TASK_SET SPLIT CATEGORY METRIC K VALUE [LOW, HIGH] N PROBLEMS, values to 4
// significant digits without trailing zeros, "(all)" for the whole-set category, ATTEMPT after RUN
// when `show_attempt`, and STAGE right after RUN when `stages` is given ("?" for a run missing
// from it).
void PrintEvalsTable(std::ostream& out, const v1::GetEvalsResponse& response, bool show_attempt,
                     const std::map<int64_t, std::string>* stages = nullptr);

// GetEvals, printed in options.format; for a sweep, also ListRuns for each run's stage. 0 ok (a
// line saying so when there are no results), 1 the call failed (NOT_FOUND: no such run or sweep), 2
// bad options.
int Evals(CliContext& cli, const EvalsOptions& options);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_EVALS_H_
