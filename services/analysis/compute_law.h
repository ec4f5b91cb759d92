// The compute-only law: the loss reached with C training FLOPs on the compute-optimal frontier
// (or along whatever one-dimensional family of runs the points come from),
//
//   L(C) = E + k C^-gamma,   k = e^log_k, E = e^e
//
// fitted in the style of chinchilla.h: sum_i Huber_delta(LSE(log_k - gamma log C_i, e) - log L_i)
// minimised by L-BFGS (Ceres) from every start of a grid, the lowest end point winning.
#ifndef SCALELAB_SERVICES_ANALYSIS_COMPUTE_LAW_H_
#define SCALELAB_SERVICES_ANALYSIS_COMPUTE_LAW_H_

#include <cmath>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/analysis/bootstrap.h"
#include "services/analysis/scaling_point.h"
#include "services/analysis/solver_settings.h"

namespace scalelab::analysis {

struct ComputeLawParams {
  double log_k = 0;
  double e = 0;
  double gamma = 0;

  double k() const { return std::exp(log_k); }
  double E() const { return std::exp(e); }

  static constexpr int kNumParams = 3;
  // (log_k, e, gamma): the order of ComputeLawParamNames() and of bootstrap rows.
  std::vector<double> ToVector() const { return {log_k, e, gamma}; }
  // `values` has kNumParams entries in that order (asserted).
  static ComputeLawParams FromVector(absl::Span<const double> values);
};

// {"log_k", "e", "gamma"}.
std::vector<std::string> ComputeLawParamNames();

// L(C) in nats per token; C in FLOPs.
inline double PredictLoss(const ComputeLawParams& params, double flops) {
  return params.E() + params.k() * std::pow(flops, -params.gamma);
}

struct ComputeLawOptions {
  double huber_delta = 1e-3;
  // The grid (7 x 5 x 7 = 245 starts). Training runs span C ~ 1e15..1e26 FLOPs (log C ~ 35..60)
  // and reducible losses k C^-gamma ~ 0.1..10, so log_k ~ gamma log C covers 0..30 for the
  // exponents seen in practice (gamma ~ 0.03..0.3; Kaplan et al. 0.050, Hoffmann et al. ~0.15).
  std::vector<double> log_k_starts = {0, 5, 10, 15, 20, 25, 30};
  std::vector<double> e_starts = {-1, -0.5, 0, 0.5, 1};
  std::vector<double> gamma_starts = {0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5};
  // Threads running starts; 0 = std::thread::hardware_concurrency().
  int threads = 0;
  SolverSettings solver;

  // InvalidArgument naming the field (as ChinchillaOptions::Validate).
  absl::Status Validate() const;
};

struct ComputeLawFit {
  ComputeLawParams params;
  double objective = 0;
  int num_points = 0;
  int starts_tried = 0;
  int starts_converged = 0;
};

// InvalidArgument for bad options, fewer than 3 points or a point with a non-positive or
// non-finite C or loss; FailedPrecondition when no start reached a finite objective.
absl::StatusOr<ComputeLawFit> FitComputeLaw(absl::Span<const ScalingPoint> points,
                                            const ComputeLawOptions& options = {});

// One L-BFGS run from `start` on the calling thread.
absl::StatusOr<ComputeLawFit> RefitComputeLaw(absl::Span<const ScalingPoint> points,
                                              const ComputeLawParams& start,
                                              const ComputeLawOptions& options = {});

// Bootstrap, each resample refit from full_fit.params (see bootstrap.h). Rows in ToVector()
// order; intervals with EstimateParams / EstimateDerived.
absl::StatusOr<BootstrapSamples> BootstrapComputeLaw(absl::Span<const ScalingPoint> points,
                                                     const ComputeLawFit& full_fit,
                                                     const ComputeLawOptions& options,
                                                     const BootstrapOptions& bootstrap);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_COMPUTE_LAW_H_
