// One fit group as a self-contained job: what to fit (a law, bootstrap refits, seed, threads and
// the points) and what came out (parameters, bootstrap rows, objective, held-out error, or why
// it failed), with a line-oriented text encoding so the job can run in another process
// (`scalelab-fit-group` reads a request on stdin and writes the result on stdout). The encoding
// and RunFitGroup's contract live here; RunFitGroup itself is in scalelab_analysis_fit.
//
// Request:  "law <chinchilla|compute>", "bootstrap <K>", "seed <S>", "threads <T>", then one
//           "point <run_id> <n_params> <tokens> <flops> <loss>" per point.
// Result:   "names <p1> ...", "params <v1> ...", "objective <x>", "holdout <x|nan>",
//           one "sample <v1> ..." per bootstrap row; or a single "error <message>".
// Numbers are written with 17 significant digits, so they read back exactly.
#ifndef SCALELAB_SERVICES_ANALYSIS_FIT_GROUP_IO_H_
#define SCALELAB_SERVICES_ANALYSIS_FIT_GROUP_IO_H_

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/analysis/scaling_point.h"

namespace scalelab::analysis {

struct FitGroupRequest {
  std::string law = "chinchilla";  // "chinchilla" | "compute"
  int bootstrap = 1000;            // refits; 0 = none
  uint64_t seed = 1;
  int threads = 0;  // 0 = all cores
  std::vector<ScalingPoint> points;
};

struct FitGroupResult {
  std::vector<std::string> param_names;
  std::vector<double> params;
  std::vector<double> samples;  // row-major, param_names.size() per row
  double objective = 0;
  double holdout_rel_error = std::numeric_limits<double>::quiet_NaN();  // chinchilla only
  std::string error;  // non-empty when the fit failed; the rest is then empty
};

std::string EncodeFitGroupRequest(const FitGroupRequest& request);
absl::StatusOr<FitGroupRequest> ParseFitGroupRequest(absl::string_view text);
std::string EncodeFitGroupResult(const FitGroupResult& result);
absl::StatusOr<FitGroupResult> ParseFitGroupResult(absl::string_view text);

// Fits the request's points with its law, then its bootstrap, then (chinchilla) the held-out
// check; a fit that fails is reported in `error`, a failed bootstrap or held-out check leaves
// samples empty or the error NaN. Defined in scalelab_analysis_fit.
FitGroupResult RunFitGroup(const FitGroupRequest& request);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_FIT_GROUP_IO_H_
