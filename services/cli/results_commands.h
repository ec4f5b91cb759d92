// The `scalelab` commands over a sweep's results: fit, plot, export, report. Like commands.h,
// each writes its result to cli.out and its errors to cli.err and returns the exit code (0 ok,
// 1 the call failed, 2 usage or input). Each takes an Options struct whose Validate() names
// the flag, the value and what was expected; main.cc maps flags onto it.
#ifndef SCALELAB_SERVICES_CLI_RESULTS_COMMANDS_H_
#define SCALELAB_SERVICES_CLI_RESULTS_COMMANDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/cli/commands.h"

namespace scalelab::cli {

// "1e19,1e20" -> {1e19, 1e20}; "" -> {} (the server's default budgets). InvalidArgument naming
// `flag` and the bad item unless each is a finite positive number.
absl::StatusOr<std::vector<double>> ParseBudgets(absl::string_view text,
                                                 absl::string_view flag = "--budgets");

struct FitOptions {
  int64_t sweep_id = 0;               // required
  std::vector<double> budgets_flops;  // allocations for these; empty = 1e18..1e24 by 10x
  double compare_n_params = 0;        // comparisons at this N; 0 = the largest N fitted
  double compare_target_loss = 0;     // and this loss; 0 = the server's default
  absl::Status Validate() const;
};
// A sweep's fits (GetFits). When there are none, says why: the sweep is still running, asks
// for no fit, or the scheduler does not serve fits (UNIMPLEMENTED).
int Fit(CliContext& cli, const FitOptions& options);

struct PlotOptions {
  int64_t sweep_id = 0;
  std::string out;                  // FILE.svg or FILE.png; required
  std::string metric = "val_loss";  // the curves drawn
  std::string x = "compute";        // "compute" (C, FLOPs) or "tokens" (one colour per group)
  bool keep_script = false;         // also save the gnuplot script as FILE.gp
  int32_t max_points = 200;         // per run, downsampled by the server
  std::string gnuplot = "gnuplot";  // the executable
  absl::Status Validate() const;
};
// Curves (GetSweepCurves), runs' records and fits (GetFits, when served) drawn with gnuplot.
int Plot(CliContext& cli, const PlotOptions& options);

struct ExportOptions {
  int64_t sweep_id = 0;
  std::string format = "csv";  // csv | json
  std::string rows = "runs";   // runs: one row per run; points: one row per metric point
  std::vector<std::string> names = {"val_loss", "train_loss"};  // points: the metrics
  std::string out;  // "" = stdout; else written to a temporary file and renamed
  absl::Status Validate() const;
};
// Runs through every ListRuns page, or the points of one GetSweepCurves call per metric name.
int Export(CliContext& cli, const ExportOptions& options);

struct CarbonOptions {
  int64_t sweep_id = 0;
  double pue = 0;             // 0 = the scheduler's default
  double grid_g_per_kwh = 0;  // 0 = the scheduler's default
  absl::Status Validate() const;
};
int CarbonReport(CliContext& cli, const CarbonOptions& options);

// sweep_id 0 = the whole cluster.
int ReliabilityReport(CliContext& cli, int64_t sweep_id);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_RESULTS_COMMANDS_H_
