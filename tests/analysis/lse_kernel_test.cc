// The vectorised objective (internal/lse_kernel.*) against the scalar reference, for each build
// this CPU can run.
#include "services/analysis/internal/lse_kernel.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "services/analysis/internal/lse_fit.h"

namespace scalelab::analysis::internal {
namespace {

TEST_CASE("The vectorised objective and gradient match the scalar reference", "[analysis]") {
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<double> log_n(std::log(1e7), std::log(1e11));
  std::uniform_real_distribution<double> log_d(std::log(1e9), std::log(1e13));
  std::uniform_real_distribution<double> log_l(std::log(1.8), std::log(5.0));
  for (int num_terms : {1, 2}) {
    // 37 points: not a multiple of the padding, so the padded tail is exercised.
    std::vector<std::vector<double>> features(num_terms);
    std::vector<double> log_loss;
    for (int point = 0; point < 37; ++point) {
      features[0].push_back(log_n(rng));
      if (num_terms == 2) features[1].push_back(log_d(rng));
      log_loss.push_back(log_l(rng));
    }
    const LseHuberData data(features, log_loss, 1e-3);
    std::uniform_real_distribution<double> coef(0, 25), e(-1, 1), power(0, 2);
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<double> params;
      for (int term = 0; term < num_terms; ++term) params.push_back(coef(rng));
      params.push_back(e(rng));
      for (int term = 0; term < num_terms; ++term) params.push_back(power(rng));
      double reference = 0, fast = 0;
      std::vector<double> reference_gradient(params.size()), fast_gradient(params.size());
      REQUIRE(data.EvaluateReference(params.data(), &reference, reference_gradient.data()));
      REQUIRE(data.Evaluate(params.data(), &fast, fast_gradient.data()));
      CHECK(fast == Approx(reference).epsilon(1e-12));
      for (size_t param = 0; param < params.size(); ++param) {
        CHECK(fast_gradient[param] ==
              Approx(reference_gradient[param]).epsilon(1e-9).margin(1e-15));
      }
      // Each build the CPU runs, not only the one EvaluateKernel picked.
      KernelInput input;
      input.num_terms = num_terms;
      std::vector<std::vector<double>> padded = features;
      std::vector<double> padded_loss = log_loss, weight(log_loss.size(), 1.0);
      for (auto& feature : padded) feature.resize(40, 0.0);
      padded_loss.resize(40, 0.0);
      weight.resize(40, 0.0);
      for (int term = 0; term < num_terms; ++term) {
        input.features[term] = padded[term].data();
        input.coef[term] = params[term];
        input.power[term] = params[num_terms + 1 + term];
      }
      input.log_loss = padded_loss.data();
      input.weight = weight.data();
      input.padded_points = 40;
      input.exp_e = std::exp(params[num_terms]);
      KernelOutput output;
      generic::EvaluateKernel(input, true, &output);
      CHECK(output.objective == Approx(reference).epsilon(1e-12));
      if (Avx2KernelBuilt() && CpuHasAvx2Fma()) {
        avx2::EvaluateKernel(input, true, &output);
        CHECK(output.objective == Approx(reference).epsilon(1e-12));
        CHECK(output.e_gradient == Approx(reference_gradient[num_terms]).epsilon(1e-9));
      }
    }
  }
}

TEST_CASE("The objective falls back to the shifted form where exponents would overflow",
          "[analysis]") {
  const LseHuberData data({{20.0, 21.0, 22.0}}, {0.8, 0.7, 0.6}, 1e-3);
  // exp(900 - 0.1 x 20) overflows a double; the shifted form does not.
  const double params[] = {900, 0, 0.1};
  double objective = 0, gradient[3];
  REQUIRE(data.Evaluate(params, &objective, gradient));
  double reference = 0;
  REQUIRE(data.EvaluateReference(params, &reference, nullptr));
  CHECK(std::isfinite(objective));
  CHECK(objective == reference);
}

TEST_CASE("The kernel reports whether it uses AVX2 as the CPU allows", "[analysis]") {
  CHECK(KernelUsesAvx2() == (Avx2KernelBuilt() && CpuHasAvx2Fma()));
}

}  // namespace
}  // namespace scalelab::analysis::internal
