// The comparison functions that run the optimiser (Ceres), in scalelab_analysis_fit.
#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/allocation.h"
#include "services/analysis/comparison.h"

namespace scalelab::analysis {
namespace {

// Model sizes closer than this (relative) are the same size.
constexpr double kSameSize = 1e-9;

bool SameSize(double lhs, double rhs) {
  return std::abs(lhs - rhs) <= kSameSize * std::max(std::abs(lhs), std::abs(rhs));
}

}  // namespace

absl::StatusOr<GroupFit> FitGroup(std::string name, absl::Span<const ScalingPoint> points,
                                  const ChinchillaOptions& options,
                                  const BootstrapOptions& bootstrap) {
  absl::StatusOr<ChinchillaFit> fit = FitChinchilla(points, options);
  if (!fit.ok()) {
    return absl::Status(fit.status().code(),
                        absl::StrCat("group ", name, ": ", fit.status().message()));
  }
  absl::StatusOr<BootstrapSamples> samples = BootstrapChinchilla(points, *fit, options, bootstrap);
  if (!samples.ok()) {
    return absl::Status(samples.status().code(),
                        absl::StrCat("group ", name, ": ", samples.status().message()));
  }
  GroupFit group;
  group.name = std::move(name);
  group.fit = *std::move(fit);
  group.samples = *std::move(samples);
  return group;
}

absl::StatusOr<HoldoutResult> HoldoutLargestModel(absl::Span<const ScalingPoint> points,
                                                  const ChinchillaOptions& options) {
  if (auto status = CheckChinchillaPoints(points); !status.ok()) return status;
  if (points.empty()) return absl::InvalidArgumentError("holdout: no points");
  double largest = 0;
  for (const ScalingPoint& point : points) largest = std::max(largest, point.n_params);
  std::vector<ScalingPoint> fit_points;
  std::vector<ScalingPoint> held_out;
  for (const ScalingPoint& point : points) {
    (SameSize(point.n_params, largest) ? held_out : fit_points).push_back(point);
  }
  std::vector<double> sizes;
  for (const ScalingPoint& point : fit_points) sizes.push_back(point.n_params);
  std::sort(sizes.begin(), sizes.end());
  int distinct = 0;
  for (size_t size_idx = 0; size_idx < sizes.size(); ++size_idx) {
    if (size_idx == 0 || !SameSize(sizes[size_idx], sizes[size_idx - 1])) ++distinct;
  }
  if (distinct < 3) {
    return absl::FailedPreconditionError(
        absl::StrCat("holdout: after holding out the largest model size (N = ", largest, ", ",
                     held_out.size(), " points) the rest has ", distinct,
                     " distinct model sizes; extrapolating in N needs at least 3"));
  }
  absl::StatusOr<ChinchillaFit> fit = FitChinchilla(fit_points, options);
  if (!fit.ok()) return fit.status();
  HoldoutResult result;
  result.held_out_n_params = largest;
  result.fit_points = static_cast<int>(fit_points.size());
  result.held_out_points = static_cast<int>(held_out.size());
  result.fit = *fit;
  double error_sum = 0;
  for (const ScalingPoint& point : held_out) {
    const double predicted = Predict(fit->params, point.n_params, point.tokens);
    result.predicted.push_back(predicted);
    result.actual.push_back(point.loss);
    error_sum += std::fabs(predicted - point.loss) / point.loss;
  }
  result.mean_relative_error = error_sum / static_cast<double>(held_out.size());
  return result;
}

}  // namespace scalelab::analysis
