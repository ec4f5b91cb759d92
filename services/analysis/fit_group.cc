// RunFitGroup (declared in fit_group_io.h): the fit, bootstrap and held-out check of one group.
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/chinchilla.h"
#include "services/analysis/comparison.h"
#include "services/analysis/compute_law.h"
#include "services/analysis/fit_group_io.h"

namespace scalelab::analysis {

FitGroupResult RunFitGroup(const FitGroupRequest& request) {
  FitGroupResult result;
  BootstrapOptions bootstrap;
  bootstrap.samples = request.bootstrap;
  bootstrap.seed = request.seed;
  bootstrap.threads = request.threads;
  if (request.law == "compute") {
    ComputeLawOptions options;
    options.threads = request.threads;
    auto fit = FitComputeLaw(request.points, options);
    if (!fit.ok()) {
      result.error = absl::StrCat("compute-law fit failed: ", fit.status().message());
      return result;
    }
    result.param_names = ComputeLawParamNames();
    result.params = fit->params.ToVector();
    result.objective = fit->objective;
    if (request.bootstrap > 0) {
      auto samples = BootstrapComputeLaw(request.points, *fit, options, bootstrap);
      if (samples.ok()) result.samples = std::move(samples->values);
    }
    return result;
  }
  if (request.law != "chinchilla") {
    result.error = absl::StrCat("unknown law \"", request.law, "\"");
    return result;
  }
  ChinchillaOptions options;
  options.threads = request.threads;
  auto fit = FitChinchilla(request.points, options);
  if (!fit.ok()) {
    result.error = absl::StrCat("chinchilla fit failed: ", fit.status().message());
    return result;
  }
  result.param_names = ChinchillaParamNames();
  result.params = fit->params.ToVector();
  result.objective = fit->objective;
  if (request.bootstrap > 0) {
    auto samples = BootstrapChinchilla(request.points, *fit, options, bootstrap);
    if (samples.ok()) result.samples = std::move(samples->values);
  }
  auto holdout = HoldoutLargestModel(request.points, options);
  if (holdout.ok()) result.holdout_rel_error = holdout->mean_relative_error;
  return result;
}

}  // namespace scalelab::analysis
