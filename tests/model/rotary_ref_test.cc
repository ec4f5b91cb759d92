#include "kernels/rotary_ref.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace scalelab::kernels {
namespace {

TEST_CASE("The rotary reference pairs channel i with i + head_dim/2 and rotates by the table",
          "[kernels]") {
  // One row, two positions, head_dim 4: position 0 rotates by 0, position 1 by 90 degrees.
  const std::vector<float> x = {1, 2, 3, 4, 1, 2, 3, 4};
  const std::vector<float> cos = {1, 1, 0, 0};
  const std::vector<float> sin = {0, 0, 1, 1};
  std::vector<float> out(8);
  RotaryRef(out.data(), x.data(), cos.data(), sin.data(), 1, 2, 4, /*inverse=*/false);
  CHECK(out == std::vector<float>{1, 2, 3, 4, -3, -4, 1, 2});
  RotaryRef(out.data(), x.data(), cos.data(), sin.data(), 1, 2, 4, /*inverse=*/true);
  CHECK(out == std::vector<float>{1, 2, 3, 4, 3, 4, -1, -2});
}

TEST_CASE("The inverse rotary reference undoes the forward one, in place, and keeps norms",
          "[kernels]") {
  const int rows = 3, seq = 5, head_dim = 8, half = head_dim / 2;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(rows * seq * head_dim);
  for (float& value : x) value = normal(rng);
  std::vector<float> cos(seq * half), sin(seq * half);
  for (int idx = 0; idx < seq * half; ++idx) {
    const double angle = 0.37 * idx;
    cos[idx] = static_cast<float>(std::cos(angle));
    sin[idx] = static_cast<float>(std::sin(angle));
  }
  std::vector<float> y = x;
  RotaryRef(y.data(), y.data(), cos.data(), sin.data(), rows, seq, head_dim, false);
  for (int pair_start = 0; pair_start < rows * seq; ++pair_start) {
    for (int pair = 0; pair < half; ++pair) {
      const size_t i1 = pair_start * head_dim + pair;
      const size_t i2 = i1 + half;
      CHECK(y[i1] * y[i1] + y[i2] * y[i2] == Approx(x[i1] * x[i1] + x[i2] * x[i2]).epsilon(1e-5));
    }
  }
  CHECK(y != x);
  RotaryRef(y.data(), y.data(), cos.data(), sin.data(), rows, seq, head_dim, true);
  for (size_t idx = 0; idx < x.size(); ++idx) CHECK(y[idx] == Approx(x[idx]).margin(1e-5));
}

}  // namespace
}  // namespace scalelab::kernels
