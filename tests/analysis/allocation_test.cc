#include "services/analysis/allocation.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "synthetic.h"

namespace scalelab::analysis {
namespace {

// argmin over N of L(N, C / (6N)): a scan of log N, then golden-section search around the best.
double BruteForceOptimalN(const ChinchillaParams& params, double flops) {
  auto loss_at = [&](double log_n) {
    const double n = std::exp(log_n);
    return Predict(params, n, flops / (6 * n));
  };
  double best_log_n = 0, best_loss = INFINITY;
  for (double log_n = std::log(1e3); log_n < std::log(1e16); log_n += 0.01) {
    if (const double loss = loss_at(log_n); loss < best_loss) {
      best_loss = loss;
      best_log_n = log_n;
    }
  }
  double lo = best_log_n - 0.02, hi = best_log_n + 0.02;
  const double ratio = (std::sqrt(5.0) - 1) / 2;
  for (int iteration = 0; iteration < 200; ++iteration) {
    const double left = hi - ratio * (hi - lo), right = lo + ratio * (hi - lo);
    if (loss_at(left) < loss_at(right)) {
      hi = right;
    } else {
      lo = left;
    }
  }
  return std::exp((lo + hi) / 2);
}

TEST_CASE("The optimal allocation matches a brute-force minimisation along C = 6ND", "[analysis]") {
  ChinchillaParams epoch;  // Epoch AI's refit
  epoch.a = std::log(477.8);
  epoch.b = std::log(2143);
  epoch.e = std::log(1.8172);
  epoch.alpha = 0.3473;
  epoch.beta = 0.3672;
  for (const ChinchillaParams& params : {testing::HoffmannParams(), epoch}) {
    for (double flops : {1e18, 5.76e23, 1e26}) {
      absl::StatusOr<Allocation> allocation = OptimalAllocation(params, flops);
      REQUIRE(allocation.ok());
      const double brute_n = BruteForceOptimalN(params, flops);
      INFO("flops " << flops << " N " << allocation->n_params << " brute " << brute_n);
      CHECK(allocation->n_params == Approx(brute_n).epsilon(1e-5));
      CHECK(allocation->tokens == Approx(flops / (6 * allocation->n_params)).epsilon(1e-12));
      CHECK(allocation->loss ==
            Approx(Predict(params, brute_n, flops / (6 * brute_n))).epsilon(1e-9));
    }
  }
}

TEST_CASE("The allocation's closed form agrees with the G formula", "[analysis]") {
  const ChinchillaParams params = testing::HoffmannParams();
  const double flops = 5.76e23;
  absl::StatusOr<Allocation> allocation = OptimalAllocation(params, flops);
  REQUIRE(allocation.ok());
  const double sum = params.alpha + params.beta;
  const double g = std::pow(params.alpha * params.A() / (params.beta * params.B()), 1 / sum);
  CHECK(allocation->n_params == Approx(g * std::pow(flops / 6, params.beta / sum)));
  CHECK(allocation->tokens == Approx(std::pow(flops / 6, params.alpha / sum) / g));
}

TEST_CASE("An allocation without an optimum or with a bad budget is refused", "[analysis]") {
  ChinchillaParams params = testing::HoffmannParams();
  CHECK(OptimalAllocation(params, 0).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(OptimalAllocation(params, NAN).status().code() == absl::StatusCode::kInvalidArgument);
  params.beta = 0;
  CHECK(OptimalAllocation(params, 1e20).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("Allocation intervals come from the bootstrap rows and skip rows without an optimum",
          "[analysis]") {
  const ChinchillaParams best = testing::HoffmannParams();
  BootstrapSamples samples;
  samples.param_names = ChinchillaParamNames();
  for (double alpha : {0.30, 0.34, 0.38, -0.1}) {
    ChinchillaParams row = best;
    row.alpha = alpha;
    const std::vector<double> values = row.ToVector();
    samples.values.insert(samples.values.end(), values.begin(), values.end());
  }
  absl::StatusOr<AllocationEstimate> estimate = EstimateAllocation(best, samples, 1e22, 0.5);
  REQUIRE(estimate.ok());
  CHECK(estimate->n_params.samples_used == 3);
  CHECK(estimate->n_params.samples_skipped == 1);
  CHECK(estimate->n_params.value == Approx(OptimalAllocation(best, 1e22)->n_params));
  CHECK(estimate->n_params.lo <= estimate->n_params.value);
  CHECK(estimate->n_params.value <= estimate->n_params.hi);
  CHECK(estimate->tokens_per_param.value ==
        Approx(estimate->tokens.value / estimate->n_params.value));
}

}  // namespace
}  // namespace scalelab::analysis
