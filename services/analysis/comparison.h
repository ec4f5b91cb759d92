// Comparing fitted groups of runs (e.g. two data mixtures) and checking a fit's extrapolation.
#ifndef SCALELAB_SERVICES_ANALYSIS_COMPARISON_H_
#define SCALELAB_SERVICES_ANALYSIS_COMPARISON_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/analysis/bootstrap.h"
#include "services/analysis/chinchilla.h"
#include "services/analysis/scaling_point.h"

namespace scalelab::analysis {

// Tokens D a model of n_params parameters needs to reach target_loss under `params`:
//   D = (B / (L* - E - A/N^alpha))^(1/beta)
// +infinity when L* <= E + A/N^alpha (the model's loss floor: not reachable with any data).
// InvalidArgument when n_params or target_loss is not finite and positive or beta <= 0.
absl::StatusOr<double> TokensToReachLoss(const ChinchillaParams& params, double n_params,
                                         double target_loss);

// The data-efficiency multiplier of `faster` over `slower` at model size n_params and
// target_loss: D_needed(slower) / D_needed(faster); > 1 when `faster` needs fewer tokens.
// OutOfRange naming the group when either cannot reach the target at that size.
absl::StatusOr<double> DataEfficiencyMultiplier(const ChinchillaParams& slower,
                                                const ChinchillaParams& faster, double n_params,
                                                double target_loss);

// A fitted group with its bootstrap: what a comparison needs.
struct GroupFit {
  std::string name;
  ChinchillaFit fit;
  BootstrapSamples samples;
};

// FitChinchilla then BootstrapChinchilla on one group's points.
absl::StatusOr<GroupFit> FitGroup(std::string name, absl::Span<const ScalingPoint> points,
                                  const ChinchillaOptions& options,
                                  const BootstrapOptions& bootstrap);

// The multiplier with a percentile interval. Row i of one group's samples is paired with row i
// of the other's, up to the shorter of the two: the groups' resamples are independent, so any
// fixed pairing draws from the product of the two bootstrap distributions, and pairing by index
// keeps the result deterministic. Pairs where either group cannot reach the target are skipped
// and counted in samples_skipped. Errors as DataEfficiencyMultiplier for the point value.
absl::StatusOr<Estimate> EstimateDataEfficiencyMultiplier(const GroupFit& slower,
                                                          const GroupFit& faster, double n_params,
                                                          double target_loss,
                                                          double confidence = 0.95);

struct HoldoutResult {
  double held_out_n_params = 0;  // the largest N, whose runs were held out
  int fit_points = 0;
  int held_out_points = 0;
  ChinchillaFit fit;              // on the other points
  std::vector<double> predicted;  // per held-out point, in input order
  std::vector<double> actual;
  double mean_relative_error = 0;  // mean of |predicted - actual| / actual
};

// Fits on every point except those of the largest model size (sizes within a relative 1e-9
// count as one) and predicts those. FailedPrecondition when the remaining points have fewer
// than 3 distinct model sizes (an extrapolation in N needs a trend in N); otherwise errors as
// FitChinchilla.
absl::StatusOr<HoldoutResult> HoldoutLargestModel(absl::Span<const ScalingPoint> points,
                                                  const ChinchillaOptions& options = {});

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_COMPARISON_H_
