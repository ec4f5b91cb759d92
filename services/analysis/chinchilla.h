// The Chinchilla parametric loss (Hoffmann et al. 2022, "Approach 3"), fitted exactly as Epoch
// AI refit it (Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt"):
//
//   L(N, D) = E + A / N^alpha + B / D^beta,   A = e^a, B = e^b, E = e^e
//
// N = non-embedding parameters, D = training tokens, L = loss in nats per token. The objective
// is sum_i Huber_delta(LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i) with delta = 1e-3
// (scipy.special.huber), minimised by L-BFGS (Ceres) from every start of a grid; the lowest end
// point wins. On Epoch's 240 points (tests/analysis/testdata) this reproduces their grid-best
// fit: objective 0.0010182741, A 477.8, B 2143, E 1.8172, alpha 0.3473, beta 0.3672.
#ifndef SCALELAB_SERVICES_ANALYSIS_CHINCHILLA_H_
#define SCALELAB_SERVICES_ANALYSIS_CHINCHILLA_H_

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

// The fitted parameters, in log space for the scales (as fitted).
struct ChinchillaParams {
  double a = 0;
  double b = 0;
  double e = 0;
  double alpha = 0;
  double beta = 0;

  double A() const { return std::exp(a); }
  double B() const { return std::exp(b); }
  double E() const { return std::exp(e); }

  static constexpr int kNumParams = 5;
  // (a, b, e, alpha, beta): the order of ChinchillaParamNames() and of bootstrap rows.
  std::vector<double> ToVector() const { return {a, b, e, alpha, beta}; }
  // `values` has kNumParams entries in that order (asserted: callers build them).
  static ChinchillaParams FromVector(absl::Span<const double> values);
};

// {"a", "b", "e", "alpha", "beta"}.
std::vector<std::string> ChinchillaParamNames();

struct ChinchillaOptions {
  // Huber delta on log-loss residuals (Hoffmann et al.).
  double huber_delta = 1e-3;
  // The grid of starts (Hoffmann et al.'s, as Epoch used it): 6 x 6 x 5 x 5 x 5 = 4500 starts.
  std::vector<double> a_starts = {0, 5, 10, 15, 20, 25};
  std::vector<double> b_starts = {0, 5, 10, 15, 20, 25};
  std::vector<double> e_starts = {-1, -0.5, 0, 0.5, 1};
  std::vector<double> alpha_starts = {0, 0.5, 1, 1.5, 2};
  std::vector<double> beta_starts = {0, 0.5, 1, 1.5, 2};
  // Threads running starts; 0 = std::thread::hardware_concurrency(). The result is the same for
  // any count (ties go to the first start in grid order).
  int threads = 0;
  // L-BFGS stopping rules for each start.
  SolverSettings solver;

  // InvalidArgument naming the field for a delta that is not finite and positive, an empty grid
  // or one with a non-finite value, threads < 0, or bad solver settings.
  absl::Status Validate() const;
};

struct ChinchillaFit {
  ChinchillaParams params;
  double objective = 0;  // sum of Huber losses at params
  int num_points = 0;
  int starts_tried = 0;
  int starts_converged = 0;  // starts whose L-BFGS met a tolerance
};

// Fits from every start of the grid. InvalidArgument for bad options, fewer than 5 points or a
// point with a non-positive or non-finite N, D or loss; FailedPrecondition when no start reached
// a finite objective. Thread-safe; blocks the caller while options.threads threads work.
absl::StatusOr<ChinchillaFit> FitChinchilla(absl::Span<const ScalingPoint> points,
                                            const ChinchillaOptions& options = {});

// One L-BFGS run from `start` on the calling thread (the grid and threads in `options` are not
// used). What the bootstrap runs for each resample.
absl::StatusOr<ChinchillaFit> RefitChinchilla(absl::Span<const ScalingPoint> points,
                                              const ChinchillaParams& start,
                                              const ChinchillaOptions& options = {});

// The objective at `params`. InvalidArgument for bad points or delta.
absl::StatusOr<double> ChinchillaObjective(absl::Span<const ScalingPoint> points,
                                           const ChinchillaParams& params,
                                           double huber_delta = 1e-3);

// Bootstrap of the fit: each resample refit with RefitChinchilla from full_fit.params (see
// bootstrap.h for why not the grid). Rows are ToVector() order.
absl::StatusOr<BootstrapSamples> BootstrapChinchilla(absl::Span<const ScalingPoint> points,
                                                     const ChinchillaFit& full_fit,
                                                     const ChinchillaOptions& options,
                                                     const BootstrapOptions& bootstrap);

// Intervals for every parameter and for A, B, E.
struct ChinchillaEstimates {
  Estimate a, b, e, alpha, beta;
  Estimate A, B, E;
};
absl::StatusOr<ChinchillaEstimates> EstimateChinchilla(const ChinchillaParams& best,
                                                       const BootstrapSamples& samples,
                                                       double confidence = 0.95);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_CHINCHILLA_H_
