// One observation for a scaling-law fit: a finished training run and its final loss.
#ifndef SCALELAB_SERVICES_ANALYSIS_SCALING_POINT_H_
#define SCALELAB_SERVICES_ANALYSIS_SCALING_POINT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace scalelab::analysis {

struct ScalingPoint {
  double n_params = 0;  // N: non-embedding parameters
  double tokens = 0;    // D: training tokens
  double flops = 0;     // C: training FLOPs (6ND for a dense transformer)
  double loss = 0;      // final loss in nats per token
  int64_t run_id = 0;   // the run it came from; 0 when unknown
};

// OK when every point has finite, positive n_params, tokens and loss (what the Chinchilla fit
// takes logs of); otherwise InvalidArgument naming the first bad point's index, field and value.
absl::Status CheckChinchillaPoints(absl::Span<const ScalingPoint> points);

// As above for the compute-only law: finite, positive flops and loss.
absl::Status CheckComputePoints(absl::Span<const ScalingPoint> points);

// `points` without the `count` points of highest loss (all of them when count >= size), in the
// original order otherwise. Epoch AI's Chinchilla refit drops the 5 highest-loss points.
std::vector<ScalingPoint> WithoutHighestLoss(absl::Span<const ScalingPoint> points, size_t count);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_SCALING_POINT_H_
