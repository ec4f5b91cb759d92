#include "services/analysis/allocation.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace scalelab::analysis {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The allocation, or NaNs where there is none; inputs already checked for finiteness.
Allocation Allocate(const ChinchillaParams& params, double flops) {
  Allocation allocation;
  allocation.flops = flops;
  if (!(params.alpha > 0 && params.beta > 0)) {
    allocation.n_params = allocation.tokens = allocation.loss = kNaN;
    return allocation;
  }
  const double sum = params.alpha + params.beta;
  // In log space: A and B can be e^25 and (C/6)^x overflow-prone at the extremes of a bootstrap.
  const double log_g = (std::log(params.alpha) + params.a - std::log(params.beta) - params.b) / sum;
  const double log_budget = std::log(flops / 6);
  allocation.n_params = std::exp(log_g + params.beta / sum * log_budget);
  allocation.tokens = std::exp(params.alpha / sum * log_budget - log_g);
  allocation.loss = Predict(params, allocation.n_params, allocation.tokens);
  return allocation;
}

}  // namespace

double Predict(const ChinchillaParams& params, double n_params, double tokens) {
  return params.E() + std::exp(params.a - params.alpha * std::log(n_params)) +
         std::exp(params.b - params.beta * std::log(tokens));
}

absl::StatusOr<Allocation> OptimalAllocation(const ChinchillaParams& params, double flops) {
  if (!(std::isfinite(flops) && flops > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("allocation: flops: expected a finite positive number, got ", flops));
  }
  if (!(params.alpha > 0 && params.beta > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "allocation: expected alpha > 0 and beta > 0 for an optimum, got alpha = ", params.alpha,
        ", beta = ", params.beta));
  }
  return Allocate(params, flops);
}

absl::StatusOr<AllocationEstimate> EstimateAllocation(const ChinchillaParams& best,
                                                      const BootstrapSamples& samples, double flops,
                                                      double confidence) {
  absl::StatusOr<Allocation> point = OptimalAllocation(best, flops);
  if (!point.ok()) return point.status();
  if (samples.param_names != ChinchillaParamNames()) {
    return absl::InvalidArgumentError(
        "allocation estimate: samples are not of the Chinchilla law (a, b, e, alpha, beta)");
  }
  const std::vector<double> best_values = best.ToVector();
  auto estimate = [&](auto field) {
    return EstimateDerived(
        samples, best_values,
        [&](absl::Span<const double> row) {
          return field(Allocate(ChinchillaParams::FromVector(row), flops));
        },
        confidence);
  };
  AllocationEstimate result;
  result.flops = flops;
  absl::StatusOr<Estimate> n_params = estimate([](const Allocation& a) { return a.n_params; });
  if (!n_params.ok()) return n_params.status();
  result.n_params = *n_params;
  absl::StatusOr<Estimate> tokens = estimate([](const Allocation& a) { return a.tokens; });
  if (!tokens.ok()) return tokens.status();
  result.tokens = *tokens;
  absl::StatusOr<Estimate> loss = estimate([](const Allocation& a) { return a.loss; });
  if (!loss.ok()) return loss.status();
  result.loss = *loss;
  absl::StatusOr<Estimate> ratio =
      estimate([](const Allocation& a) { return a.tokens / a.n_params; });
  if (!ratio.ok()) return ratio.status();
  result.tokens_per_param = *ratio;
  return result;
}

}  // namespace scalelab::analysis
