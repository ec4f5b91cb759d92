// The fitting engine shared by the Chinchilla law and the compute-only law. Private to
// services/analysis.
//
// Both laws are sums of power laws and a constant, fitted in log space the way Hoffmann et al.
// (2022) do it. With K power terms (K = 2 for Chinchilla: N and D; K = 1 for the compute law:
// C) the prediction for point i is
//   log Lhat_i = LSE(c_1 - p_1 x_1i, ..., c_K - p_K x_Ki, e)
// with x_ki = log of the k-th input, and the objective is sum_i Huber_delta(log Lhat_i - log L_i).
// Parameters are laid out [c_1..c_K, e, p_1..p_K], which for K = 2 is Chinchilla's
// (a, b, e, alpha, beta).
#ifndef SCALELAB_SERVICES_ANALYSIS_INTERNAL_LSE_FIT_H_
#define SCALELAB_SERVICES_ANALYSIS_INTERNAL_LSE_FIT_H_

#include <limits>
#include <vector>

#include "absl/types/span.h"
#include "services/analysis/solver_settings.h"

namespace scalelab::analysis::internal {

// Immutable after construction; Evaluate may be called from many threads at once.
class LseHuberData {
 public:
  // features[k][i] = x_ki; log_loss[i] = log L_i. 1 <= features.size() <= 2, and every feature
  // vector has log_loss.size() entries (checked by assert: callers build them from points).
  LseHuberData(const std::vector<std::vector<double>>& features,
               const std::vector<double>& log_loss, double huber_delta);

  int num_terms() const { return num_terms_; }
  int num_params() const { return 2 * num_terms_ + 1; }
  size_t num_points() const { return num_points_; }

  // Sets *objective, and gradient[0..num_params) when gradient is not null. Returns false when
  // the objective is not finite (parameters far outside any sensible range).
  bool Evaluate(const double* params, double* objective, double* gradient) const;

  // The same with every point's exponents shifted by their largest, in scalar code: slower, but
  // safe for any finite parameters. Evaluate uses it where an exponent could overflow; tests use
  // it as the reference for the vectorised kernel.
  bool EvaluateReference(const double* params, double* objective, double* gradient) const;

 private:
  template <int kTerms>
  bool EvaluateShifted(const double* params, double* objective, double* gradient) const;

  int num_terms_;
  size_t num_points_;
  size_t padded_points_;
  // Padded to a multiple of kKernelPadding (lse_kernel.h) with zeros.
  std::vector<double> features_[2];
  std::vector<double> log_loss_;
  std::vector<double> weight_;  // 1 for a point, 0 for padding
  double feature_min_[2] = {0, 0};
  double feature_max_[2] = {0, 0};
  double delta_;
};

struct LocalFit {
  std::vector<double> params;
  double objective = std::numeric_limits<double>::infinity();
  bool converged = false;  // a tolerance was met (not: ran out of iterations or line search)
};

// L-BFGS (Ceres GradientProblemSolver) from `start` (num_params values).
LocalFit MinimizeFrom(const LseHuberData& data, absl::Span<const double> start,
                      const SolverSettings& settings);

struct MultiStartFit {
  std::vector<double> params;  // empty when no start reached a finite objective
  double objective = std::numeric_limits<double>::infinity();
  int starts_tried = 0;
  int starts_converged = 0;
  int best_start = -1;
};

// MinimizeFrom every start (row-major, num_params values each) on up to `threads` threads (0 =
// hardware concurrency). The best finite end point wins, ties to the lower start index, so the
// answer does not depend on the thread count.
MultiStartFit MinimizeFromEach(const LseHuberData& data, absl::Span<const double> starts,
                               const SolverSettings& settings, int threads);

// The Cartesian product of one grid per parameter, row-major, the last axis varying fastest.
std::vector<double> GridStarts(const std::vector<std::vector<double>>& axes);

}  // namespace scalelab::analysis::internal

#endif  // SCALELAB_SERVICES_ANALYSIS_INTERNAL_LSE_FIT_H_
