// `scalelab predict SWEEP | --points FILE.csv`: which post-SFT proxy predicts the outcome of RL
// best (issue 8, item 6), fitted on this machine with services/analysis/rl_predictor.h.
//
// From a sweep: every SFT run (Run.kind SFT) is one point. Its proxies are
//   sft_pass@1   pass@1 on the test split after SFT,
//   gen_loss     the final "gen_loss" metric of the SFT run (lower is better),
//   sft_pass@K   pass@k at the largest k every SFT run was evaluated at (left out when K = 1),
// and its target, rl_pass@1, is the pass@1 of its GRPO children (Run.kind GRPO,
// parent_run_id = the SFT run), averaged over the children that succeeded. A run's pass@k is
// that of its eval-kind children (Run.kind EVAL, parent_run_id = the run) when it has some that
// succeeded with results (averaged), else its own results at its last evaluated step. Only
// results of the test split, whole-set category (""), metric "pass@k", of one task set.
// AssembleProxyTable is that pairing, a pure function of the API's messages.
#ifndef SCALELAB_SERVICES_CLI_PREDICT_H_
#define SCALELAB_SERVICES_CLI_PREDICT_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scalelab/v1/results.pb.h"
#include "services/analysis/rl_predictor.h"
#include "services/cli/commands.h"
#include "services/cli/export.h"

namespace scalelab::cli {

struct PredictOptions {
  int64_t sweep_id = 0;     // exactly one of sweep_id and points_path
  std::string points_path;  // CSV: sft_run, target, then one column per proxy
  std::string format;       // table | csv | json ("" = table, or json with --output=json)
  // The task set whose pass@k is used; "" = the only one the sweep's test results have.
  std::string task_set;
  // Also write the assembled points (a sweep's) to this file in the --points format.
  std::string points_out;
  analysis::PredictorOptions predictor;

  // InvalidArgument naming the flag otherwise.
  absl::Status Validate() const;
};

struct AssembledPoints {
  analysis::ProxyTable table;  // labels are the SFT run ids
  std::string task_set;        // the task set the pass@k values are of
  int max_k = 1;               // K of the sft_pass@K proxy; 1 = no such proxy
  // SFT runs and RL children left out, and why; choices made (the K chosen).
  std::vector<std::string> notes;
};

// Pairs SFT runs with their RL outcomes as described at the top. `gen_loss_by_run` holds each
// run's "gen_loss" points (any order; the point of the highest step is the final one).
// `evals` may hold any results (they are filtered here). `task_set` "" = the only task set of
// the test pass@k results. InvalidArgument when the runs include no SFT run, when there is no
// test pass@k result, or when task_set is "" and the results span several task sets (the
// message lists them). SFT runs that cannot be a point (not succeeded, no gen_loss, no pass@1,
// no succeeded GRPO child with pass@1) are left out with a note.
absl::StatusOr<AssembledPoints> AssembleProxyTable(
    const std::vector<v1::Run>& runs,
    const std::map<int64_t, std::vector<v1::MetricPoint>>& gen_loss_by_run,
    const v1::GetEvalsResponse& evals, const std::string& task_set);

// One row per predictor, best first: rank, predictor, proxies (count), n, loo_r2, loo_r2_low,
// loo_r2_high, r2, r2_low, r2_high, adj_r2, adj_r2_low, adj_r2_high, spearman, spearman_low,
// spearman_high, resamples (bootstrap resamples the intervals come from), intercept, then
// coef_<proxy> for each of `proxy_names` (missing where the
// predictor does not use it).
TidyTable PredictorTable(const analysis::PredictorReport& report,
                         const std::vector<std::string>& proxy_names);

// The ranking as a table with a header saying what was ranked by what, the fitted lines, and
// the notes.
void PrintPredictorReport(std::ostream& out, const analysis::PredictorReport& report,
                          const std::string& source);

// The table as CSV in the --points format.
void WriteProxyTableCsv(std::ostream& out, const analysis::ProxyTable& table);

// ListRuns (every page), GetSweepCurves of "gen_loss" (final points) and GetEvals of the sweep,
// or the --points file; then the ranking in options.format. 0 ok, 1 a call failed or the
// results cannot be fitted (why on stderr), 2 bad options or a bad file.
int Predict(CliContext& cli, const PredictOptions& options);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_PREDICT_H_
