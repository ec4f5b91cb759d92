#include "services/analysis/internal/lse_fit.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <memory>
#include <utility>

#include "ceres/gradient_problem.h"
#include "ceres/gradient_problem_solver.h"
#include "services/analysis/internal/lse_kernel.h"
#include "services/analysis/internal/parallel.h"

namespace scalelab::analysis::internal {
namespace {

// Exponents up to this size cannot overflow a sum of three exp() terms, nor can exp(e) make it
// 0; beyond it Evaluate falls back to the max-shifted form.
constexpr double kSafeExponent = 600;

// Huber loss as scipy.special.huber(delta, r); *psi = its derivative.
inline double Huber(double delta, double residual, double* psi) {
  const double magnitude = std::fabs(residual);
  if (magnitude <= delta) {
    *psi = residual;
    return 0.5 * residual * residual;
  }
  *psi = residual > 0 ? delta : -delta;
  return delta * (magnitude - 0.5 * delta);
}

// Ceres owns the function it is given, so this holds a pointer to the shared data.
class LseHuberFunction final : public ceres::FirstOrderFunction {
 public:
  explicit LseHuberFunction(const LseHuberData* data) : data_(data) {}
  bool Evaluate(const double* parameters, double* cost, double* gradient) const override {
    return data_->Evaluate(parameters, cost, gradient);
  }
  int NumParameters() const override { return data_->num_params(); }

 private:
  const LseHuberData* data_;
};

}  // namespace

LseHuberData::LseHuberData(const std::vector<std::vector<double>>& features,
                           const std::vector<double>& log_loss, double huber_delta)
    : num_terms_(static_cast<int>(features.size())),
      num_points_(log_loss.size()),
      padded_points_((log_loss.size() + kKernelPadding - 1) / kKernelPadding * kKernelPadding),
      delta_(huber_delta) {
  assert(num_terms_ >= 1 && num_terms_ <= 2);
  for (int term = 0; term < num_terms_; ++term) {
    assert(features[term].size() == num_points_);
    features_[term] = features[term];
    features_[term].resize(padded_points_, 0.0);
    if (num_points_ > 0) {
      const auto [lo, hi] = std::minmax_element(features[term].begin(), features[term].end());
      feature_min_[term] = std::min(0.0, *lo);  // padding is 0
      feature_max_[term] = std::max(0.0, *hi);
    }
  }
  log_loss_ = log_loss;
  log_loss_.resize(padded_points_, 0.0);
  weight_.assign(padded_points_, 0.0);
  std::fill(weight_.begin(), weight_.begin() + num_points_, 1.0);
}

bool LseHuberData::Evaluate(const double* params, double* objective, double* gradient) const {
  // The plain sum of exponentials is safe when no exponent can overflow and exp(e) keeps the
  // sum away from zero; each term is linear in x, so its extremes are at the feature extremes.
  const double e = params[num_terms_];
  bool safe = std::fabs(e) <= kSafeExponent;
  for (int term = 0; term < num_terms_ && safe; ++term) {
    const double c = params[term], p = params[num_terms_ + 1 + term];
    safe = std::max(c - p * feature_min_[term], c - p * feature_max_[term]) <= kSafeExponent;
  }
  if (!safe) return EvaluateReference(params, objective, gradient);
  KernelInput input;
  input.num_terms = num_terms_;
  for (int term = 0; term < num_terms_; ++term) {
    input.features[term] = features_[term].data();
    input.coef[term] = params[term];
    input.power[term] = params[num_terms_ + 1 + term];
  }
  input.log_loss = log_loss_.data();
  input.weight = weight_.data();
  input.padded_points = padded_points_;
  input.exp_e = std::exp(e);
  input.delta = delta_;
  KernelOutput output;
  EvaluateKernel(input, gradient != nullptr, &output);
  *objective = output.objective;
  if (gradient != nullptr) {
    for (int term = 0; term < num_terms_; ++term) {
      gradient[term] = output.coef_gradient[term];
      gradient[num_terms_ + 1 + term] = output.power_gradient[term];
    }
    gradient[num_terms_] = output.e_gradient;
  }
  return std::isfinite(output.objective);
}

bool LseHuberData::EvaluateReference(const double* params, double* objective,
                                     double* gradient) const {
  return num_terms_ == 2 ? EvaluateShifted<2>(params, objective, gradient)
                         : EvaluateShifted<1>(params, objective, gradient);
}

// Shifted by the largest exponent of each point, so any finite parameters evaluate without
// overflow. Only line-search probes far from any grid start come here.
template <int kTerms>
bool LseHuberData::EvaluateShifted(const double* params, double* objective,
                                   double* gradient) const {
  const double e = params[kTerms];
  double sum = 0;
  double g_coef[kTerms] = {}, g_power[kTerms] = {}, g_constant = 0;
  for (size_t i = 0; i < num_points_; ++i) {
    double exponent[kTerms];
    double top = e;
    for (int term = 0; term < kTerms; ++term) {
      exponent[term] = params[term] - params[kTerms + 1 + term] * features_[term][i];
      top = std::max(top, exponent[term]);
    }
    double shifted[kTerms];
    const double shifted_constant = std::exp(e - top);
    double total = shifted_constant;
    for (int term = 0; term < kTerms; ++term) {
      shifted[term] = std::exp(exponent[term] - top);
      total += shifted[term];
    }
    double psi;
    sum += Huber(delta_, top + std::log(total) - log_loss_[i], &psi);
    if (gradient == nullptr) continue;
    const double scale = psi / total;
    g_constant += scale * shifted_constant;
    for (int term = 0; term < kTerms; ++term) {
      g_coef[term] += scale * shifted[term];
      g_power[term] -= scale * shifted[term] * features_[term][i];
    }
  }
  *objective = sum;
  if (gradient != nullptr) {
    for (int term = 0; term < kTerms; ++term) {
      gradient[term] = g_coef[term];
      gradient[kTerms + 1 + term] = g_power[term];
    }
    gradient[kTerms] = g_constant;
  }
  return std::isfinite(sum);
}

LocalFit MinimizeFrom(const LseHuberData& data, absl::Span<const double> start,
                      const SolverSettings& settings) {
  LocalFit fit;
  fit.params.assign(start.begin(), start.end());
  ceres::GradientProblem problem(new LseHuberFunction(&data));
  ceres::GradientProblemSolver::Options options;
  options.line_search_direction_type = ceres::LBFGS;
  options.max_lbfgs_rank = settings.lbfgs_rank;
  options.max_num_iterations = settings.max_iterations;
  options.function_tolerance = settings.function_tolerance;
  options.gradient_tolerance = settings.gradient_tolerance;
  options.parameter_tolerance = settings.parameter_tolerance;
  // Bisection rather than Ceres's default cubic interpolation: the cubic fit is often degenerate
  // on this nearly piecewise-linear objective and glog then warns on stderr ("Trying to extract
  // roots from a constant polynomial") dozens of times per grid; bisection costs ~6% more
  // evaluations and less time, since it skips the polynomial root finding.
  options.line_search_interpolation_type = ceres::BISECTION;
  options.logging_type = ceres::SILENT;
  ceres::GradientProblemSolver::Summary summary;
  ceres::Solve(options, problem, fit.params.data(), &summary);
  fit.converged = summary.termination_type == ceres::CONVERGENCE;
  // Ceres leaves the parameters at the last accepted point; re-evaluate there rather than trust
  // final_cost, which is not set when the solve fails before the first step.
  double objective = 0;
  if (data.Evaluate(fit.params.data(), &objective, nullptr) && std::isfinite(objective)) {
    fit.objective = objective;
  }
  return fit;
}

MultiStartFit MinimizeFromEach(const LseHuberData& data, absl::Span<const double> starts,
                               const SolverSettings& settings, int threads) {
  const int num_params = data.num_params();
  const int num_starts = static_cast<int>(starts.size()) / num_params;
  // One best per worker, merged at the end: no lock on the hot path.
  const int workers = ResolveThreads(threads);
  std::vector<MultiStartFit> best(workers);
  ParallelFor(num_starts, workers, [&](int worker, int start_idx) {
    LocalFit fit = MinimizeFrom(data, starts.subspan(start_idx * num_params, num_params), settings);
    MultiStartFit& mine = best[worker];
    ++mine.starts_tried;
    if (fit.converged) ++mine.starts_converged;
    if (!std::isfinite(fit.objective)) return;
    if (mine.best_start < 0 || fit.objective < mine.objective ||
        (fit.objective == mine.objective && start_idx < mine.best_start)) {
      mine.objective = fit.objective;
      mine.params = std::move(fit.params);
      mine.best_start = start_idx;
    }
  });
  MultiStartFit merged;
  for (MultiStartFit& part : best) {
    merged.starts_tried += part.starts_tried;
    merged.starts_converged += part.starts_converged;
    if (part.best_start < 0) continue;
    if (merged.best_start < 0 || part.objective < merged.objective ||
        (part.objective == merged.objective && part.best_start < merged.best_start)) {
      merged.objective = part.objective;
      merged.params = std::move(part.params);
      merged.best_start = part.best_start;
    }
  }
  return merged;
}

std::vector<double> GridStarts(const std::vector<std::vector<double>>& axes) {
  size_t total = 1;
  for (const auto& axis : axes) total *= axis.size();
  std::vector<double> starts;
  starts.reserve(total * axes.size());
  std::vector<size_t> position(axes.size(), 0);
  for (size_t row = 0; row < total; ++row) {
    for (size_t axis_idx = 0; axis_idx < axes.size(); ++axis_idx) {
      starts.push_back(axes[axis_idx][position[axis_idx]]);
    }
    // Odometer increment, last axis fastest.
    for (size_t axis_idx = axes.size(); axis_idx-- > 0;) {
      if (++position[axis_idx] < axes[axis_idx].size()) break;
      position[axis_idx] = 0;
    }
  }
  return starts;
}

}  // namespace scalelab::analysis::internal
