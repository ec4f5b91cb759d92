// The chinchilla functions that run the optimiser (Ceres): scalelab_analysis_fit.
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/chinchilla.h"
#include "services/analysis/internal/lse_fit.h"
#include "services/analysis/internal/options_check.h"

namespace scalelab::analysis {
namespace {

constexpr size_t kMinPoints = ChinchillaParams::kNumParams;

internal::LseHuberData MakeData(absl::Span<const ScalingPoint> points, double delta) {
  std::vector<std::vector<double>> features(2);
  std::vector<double> log_loss;
  features[0].reserve(points.size());
  features[1].reserve(points.size());
  log_loss.reserve(points.size());
  for (const ScalingPoint& point : points) {
    features[0].push_back(std::log(point.n_params));
    features[1].push_back(std::log(point.tokens));
    log_loss.push_back(std::log(point.loss));
  }
  return internal::LseHuberData(features, log_loss, delta);
}

absl::Status CheckPoints(absl::Span<const ScalingPoint> points) {
  if (points.size() < kMinPoints) {
    return absl::InvalidArgumentError(absl::StrCat("chinchilla fit: expected at least ", kMinPoints,
                                                   " points (one per parameter), got ",
                                                   points.size()));
  }
  return CheckChinchillaPoints(points);
}

}  // namespace

absl::StatusOr<ChinchillaFit> FitChinchilla(absl::Span<const ScalingPoint> points,
                                            const ChinchillaOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (auto status = CheckPoints(points); !status.ok()) return status;
  const internal::LseHuberData data = MakeData(points, options.huber_delta);
  const std::vector<double> starts =
      internal::GridStarts({options.a_starts, options.b_starts, options.e_starts,
                            options.alpha_starts, options.beta_starts});
  internal::MultiStartFit best =
      internal::MinimizeFromEach(data, starts, options.solver, options.threads);
  if (best.params.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "chinchilla fit: none of the ", best.starts_tried, " starts reached a finite objective"));
  }
  ChinchillaFit fit;
  fit.params = ChinchillaParams::FromVector(best.params);
  fit.objective = best.objective;
  fit.num_points = static_cast<int>(points.size());
  fit.starts_tried = best.starts_tried;
  fit.starts_converged = best.starts_converged;
  return fit;
}

absl::StatusOr<ChinchillaFit> RefitChinchilla(absl::Span<const ScalingPoint> points,
                                              const ChinchillaParams& start,
                                              const ChinchillaOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (auto status = CheckPoints(points); !status.ok()) return status;
  const internal::LseHuberData data = MakeData(points, options.huber_delta);
  internal::LocalFit local = internal::MinimizeFrom(data, start.ToVector(), options.solver);
  if (!std::isfinite(local.objective)) {
    return absl::FailedPreconditionError("chinchilla refit: the objective is not finite");
  }
  ChinchillaFit fit;
  fit.params = ChinchillaParams::FromVector(local.params);
  fit.objective = local.objective;
  fit.num_points = static_cast<int>(points.size());
  fit.starts_tried = 1;
  fit.starts_converged = local.converged ? 1 : 0;
  return fit;
}

absl::StatusOr<double> ChinchillaObjective(absl::Span<const ScalingPoint> points,
                                           const ChinchillaParams& params, double huber_delta) {
  if (auto status = internal::CheckDelta("huber_delta", huber_delta); !status.ok()) return status;
  if (auto status = CheckChinchillaPoints(points); !status.ok()) return status;
  const internal::LseHuberData data = MakeData(points, huber_delta);
  const std::vector<double> values = params.ToVector();
  double objective = 0;
  // The scalar reference path: exact for any parameters, and this is not a hot loop.
  data.EvaluateReference(values.data(), &objective, nullptr);
  return objective;
}

absl::StatusOr<BootstrapSamples> BootstrapChinchilla(absl::Span<const ScalingPoint> points,
                                                     const ChinchillaFit& full_fit,
                                                     const ChinchillaOptions& options,
                                                     const BootstrapOptions& bootstrap) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (auto status = CheckPoints(points); !status.ok()) return status;
  const ChinchillaParams start = full_fit.params;
  return Bootstrap(
      points, ChinchillaParamNames(),
      [&](absl::Span<const ScalingPoint> resample) -> absl::StatusOr<std::vector<double>> {
        absl::StatusOr<ChinchillaFit> fit = RefitChinchilla(resample, start, options);
        if (!fit.ok()) return fit.status();
        return fit->params.ToVector();
      },
      bootstrap);
}

}  // namespace scalelab::analysis
