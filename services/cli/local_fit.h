// `scalelab fit --csv FILE`: a scaling-law fit of a CSV file on this machine, without a
// scheduler, with the analysis library (services/analysis). The result is the GetFitsResponse a
// scheduler would answer, so it prints exactly as `scalelab fit SWEEP` does (fit_format.h).
// The only part of the CLI that links scalelab_analysis (and through it Ceres).
#ifndef SCALELAB_SERVICES_CLI_LOCAL_FIT_H_
#define SCALELAB_SERVICES_CLI_LOCAL_FIT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scalelab/v1/results.pb.h"
#include "services/cli/commands.h"

namespace scalelab::cli {

struct LocalFitOptions {
  // Required. A header row names the columns (services/analysis/csv_points.h): the loss ("loss"
  // or "val_loss") and two of N ("N", "n_params"), D ("D", "tokens"), C ("C", "flops"), or C
  // alone for the compute law; "run_id" when present. `scalelab export SWEEP` writes these.
  std::string csv_path;
  std::string law = "chinchilla";     // "chinchilla" (L(N, D)) or "compute" (L(C))
  int bootstrap = 0;                  // bootstrap refits for the intervals; 0 = 1000
  double confidence = 0.95;           // interval level, in (0, 1)
  std::vector<double> budgets_flops;  // allocations (chinchilla); empty = 1e18..1e24 by 10x
  int threads = 0;                    // fit and bootstrap threads; 0 = one per core
  uint64_t seed = 1;                  // of the bootstrap resamples: the same file, the same fit

  // InvalidArgument naming the flag: no file, an unknown law, bootstrap < 0, a confidence
  // outside (0, 1), a budget that is not a positive number.
  absl::Status Validate() const;
};

// Reads and fits the file. Parameters and estimates are named as the scheduler's GetFits names
// them: the fitted ones (chinchilla a, b, e = ln A, ln B, ln E, alpha, beta; compute log_k, e,
// gamma), then A, B, E and the frontier's G (chinchilla) or E and k (compute), each with its
// bootstrap interval. Also the held-out error of a refit without the largest N (chinchilla; NaN
// when there are too few sizes) and the allocations. The CSV reader's errors name the file,
// line and column.
absl::StatusOr<v1::GetFitsResponse> FitCsv(const LocalFitOptions& options);

// FitCsv, printed like `scalelab fit SWEEP` (or as JSON). 2 for bad options or a bad file.
int LocalFit(CliContext& cli, const LocalFitOptions& options);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_LOCAL_FIT_H_
