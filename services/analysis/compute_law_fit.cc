// The compute_law functions that run the optimiser (Ceres), in scalelab_analysis_fit.
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/compute_law.h"
#include "services/analysis/internal/lse_fit.h"
#include "services/analysis/internal/options_check.h"

namespace scalelab::analysis {
namespace {

constexpr size_t kMinPoints = ComputeLawParams::kNumParams;

internal::LseHuberData MakeData(absl::Span<const ScalingPoint> points, double delta) {
  std::vector<std::vector<double>> features(1);
  std::vector<double> log_loss;
  features[0].reserve(points.size());
  log_loss.reserve(points.size());
  for (const ScalingPoint& point : points) {
    features[0].push_back(std::log(point.flops));
    log_loss.push_back(std::log(point.loss));
  }
  return internal::LseHuberData(features, log_loss, delta);
}

absl::Status CheckPoints(absl::Span<const ScalingPoint> points) {
  if (points.size() < kMinPoints) {
    return absl::InvalidArgumentError(absl::StrCat("compute law fit: expected at least ",
                                                   kMinPoints, " points (one per parameter), got ",
                                                   points.size()));
  }
  return CheckComputePoints(points);
}

ComputeLawFit MakeFit(absl::Span<const double> params, double objective, size_t num_points,
                      int tried, int converged) {
  ComputeLawFit fit;
  fit.params = ComputeLawParams::FromVector(params);
  fit.objective = objective;
  fit.num_points = static_cast<int>(num_points);
  fit.starts_tried = tried;
  fit.starts_converged = converged;
  return fit;
}

}  // namespace

absl::StatusOr<ComputeLawFit> FitComputeLaw(absl::Span<const ScalingPoint> points,
                                            const ComputeLawOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (auto status = CheckPoints(points); !status.ok()) return status;
  const internal::LseHuberData data = MakeData(points, options.huber_delta);
  const std::vector<double> starts =
      internal::GridStarts({options.log_k_starts, options.e_starts, options.gamma_starts});
  internal::MultiStartFit best =
      internal::MinimizeFromEach(data, starts, options.solver, options.threads);
  if (best.params.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "compute law fit: none of the ", best.starts_tried, " starts reached a finite objective"));
  }
  return MakeFit(best.params, best.objective, points.size(), best.starts_tried,
                 best.starts_converged);
}

absl::StatusOr<ComputeLawFit> RefitComputeLaw(absl::Span<const ScalingPoint> points,
                                              const ComputeLawParams& start,
                                              const ComputeLawOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (auto status = CheckPoints(points); !status.ok()) return status;
  const internal::LseHuberData data = MakeData(points, options.huber_delta);
  internal::LocalFit local = internal::MinimizeFrom(data, start.ToVector(), options.solver);
  if (!std::isfinite(local.objective)) {
    return absl::FailedPreconditionError("compute law refit: the objective is not finite");
  }
  return MakeFit(local.params, local.objective, points.size(), 1, local.converged ? 1 : 0);
}

absl::StatusOr<BootstrapSamples> BootstrapComputeLaw(absl::Span<const ScalingPoint> points,
                                                     const ComputeLawFit& full_fit,
                                                     const ComputeLawOptions& options,
                                                     const BootstrapOptions& bootstrap) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (auto status = CheckPoints(points); !status.ok()) return status;
  const ComputeLawParams start = full_fit.params;
  return Bootstrap(
      points, ComputeLawParamNames(),
      [&](absl::Span<const ScalingPoint> resample) -> absl::StatusOr<std::vector<double>> {
        absl::StatusOr<ComputeLawFit> fit = RefitComputeLaw(resample, start, options);
        if (!fit.ok()) return fit.status();
        return fit->params.ToVector();
      },
      bootstrap);
}

}  // namespace scalelab::analysis
