#include "services/analysis/scaling_point.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace scalelab::analysis {
namespace {

absl::Status CheckPositive(size_t index, const char* field, double value) {
  if (std::isfinite(value) && value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "point ", index, ": ", field, ": expected a finite positive number, got ", value));
}

}  // namespace

absl::Status CheckChinchillaPoints(absl::Span<const ScalingPoint> points) {
  for (size_t point_idx = 0; point_idx < points.size(); ++point_idx) {
    const ScalingPoint& point = points[point_idx];
    if (auto status = CheckPositive(point_idx, "n_params", point.n_params); !status.ok()) {
      return status;
    }
    if (auto status = CheckPositive(point_idx, "tokens", point.tokens); !status.ok()) {
      return status;
    }
    if (auto status = CheckPositive(point_idx, "loss", point.loss); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status CheckComputePoints(absl::Span<const ScalingPoint> points) {
  for (size_t point_idx = 0; point_idx < points.size(); ++point_idx) {
    const ScalingPoint& point = points[point_idx];
    if (auto status = CheckPositive(point_idx, "flops", point.flops); !status.ok()) return status;
    if (auto status = CheckPositive(point_idx, "loss", point.loss); !status.ok()) return status;
  }
  return absl::OkStatus();
}

std::vector<ScalingPoint> WithoutHighestLoss(absl::Span<const ScalingPoint> points, size_t count) {
  if (count >= points.size()) return {};
  std::vector<size_t> order(points.size());
  std::iota(order.begin(), order.end(), size_t{0});
  // Stable, so ties drop the earlier rows first and the result does not depend on the sort.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t lhs, size_t rhs) { return points[lhs].loss > points[rhs].loss; });
  std::vector<bool> dropped(points.size(), false);
  for (size_t rank = 0; rank < count; ++rank) dropped[order[rank]] = true;
  std::vector<ScalingPoint> kept;
  kept.reserve(points.size() - count);
  for (size_t point_idx = 0; point_idx < points.size(); ++point_idx) {
    if (!dropped[point_idx]) kept.push_back(points[point_idx]);
  }
  return kept;
}

}  // namespace scalelab::analysis
