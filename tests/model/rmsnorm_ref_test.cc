#include "kernels/rmsnorm_ref.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace scalelab::kernels {
namespace {

TEST_CASE("The RMSNorm reference divides each row by its root mean square and applies the gain",
          "[kernels]") {
  const std::vector<float> x = {3, 4, -1, 1};
  const std::vector<float> weight = {2, 0.5f};
  std::vector<float> out(4);
  std::vector<float> rstd(2);
  RmsNormForwardRef(out.data(), rstd.data(), x.data(), weight.data(), 2, 2, 0.0f);
  const double rms = std::sqrt(12.5);  // mean(9, 16)
  CHECK(rstd[0] == Approx(1 / rms));
  CHECK(out[0] == Approx(3 / rms * 2));
  CHECK(out[1] == Approx(4 / rms * 0.5));
  CHECK(rstd[1] == Approx(1.0));
  CHECK(out[2] == Approx(-2.0));
  CHECK(out[3] == Approx(0.5));
}

// The loss sum(out * g) for a fixed g: its finite differences are the gradients.
double Objective(const std::vector<float>& x, const std::vector<float>& weight,
                 const std::vector<float>& g, int rows, int cols) {
  std::vector<float> out(x.size());
  RmsNormForwardRef(out.data(), nullptr, x.data(), weight.data(), rows, cols, 1e-5f);
  double total = 0;
  for (size_t idx = 0; idx < out.size(); ++idx) total += static_cast<double>(out[idx]) * g[idx];
  return total;
}

TEST_CASE("The RMSNorm reference backward matches finite differences of its forward", "[kernels]") {
  const int rows = 3;
  const int cols = 5;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * cols), g(rows * cols), weight(cols);
  for (float& value : x) value = normal(rng);
  for (float& value : g) value = normal(rng);
  for (float& value : weight) value = 1.0f + 0.3f * normal(rng);
  std::vector<float> dx(x.size());
  std::vector<float> dweight(cols);
  RmsNormBackwardRef(dx.data(), dweight.data(), g.data(), x.data(), weight.data(), rows, cols,
                     1e-5f);
  // Central differences in fp32 inputs: step 1e-2 keeps the rounding error of the objective
  // (~1e-7 relative) far below the tolerance, and the truncation error is O(step^2).
  const float step = 1e-2f;
  for (size_t idx = 0; idx < x.size(); ++idx) {
    std::vector<float> plus = x, minus = x;
    plus[idx] += step;
    minus[idx] -= step;
    const double numeric =
        (Objective(plus, weight, g, rows, cols) - Objective(minus, weight, g, rows, cols)) /
        (2 * step);
    CHECK(dx[idx] == Approx(numeric).margin(2e-3));
  }
  for (int col = 0; col < cols; ++col) {
    std::vector<float> plus = weight, minus = weight;
    plus[col] += step;
    minus[col] -= step;
    const double numeric =
        (Objective(x, plus, g, rows, cols) - Objective(x, minus, g, rows, cols)) / (2 * step);
    CHECK(dweight[col] == Approx(numeric).margin(2e-3));
  }
}

}  // namespace
}  // namespace scalelab::kernels
