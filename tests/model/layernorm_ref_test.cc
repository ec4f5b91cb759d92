#include "kernels/layernorm_ref.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

namespace scalelab::kernels {
namespace {

TEST_CASE("The LayerNorm reference normalizes each row to zero mean and unit variance",
          "[kernels]") {
  const std::vector<float> x = {1, 2, 3, 4, -10, 0, 10, 20};
  const std::vector<float> weight = {1, 1, 1, 1};
  const std::vector<float> bias = {0, 0, 0, 0};
  std::vector<float> out(8);
  std::vector<float> mean(2);
  std::vector<float> rstd(2);
  LayerNormForwardRef(out.data(), mean.data(), rstd.data(), x.data(), weight.data(), bias.data(), 2,
                      4, 0.0f);
  CHECK(mean[0] == Approx(2.5));
  CHECK(rstd[0] == Approx(1 / std::sqrt(1.25)));
  CHECK(mean[1] == Approx(5.0));
  CHECK(out[0] == Approx(-1.5 / std::sqrt(1.25)));
  CHECK(out[3] == Approx(1.5 / std::sqrt(1.25)));
  for (int row = 0; row < 2; ++row) {
    double sum = 0;
    double sum_sq = 0;
    for (int col = 0; col < 4; ++col) {
      sum += out[row * 4 + col];
      sum_sq += out[row * 4 + col] * out[row * 4 + col];
    }
    CHECK(sum == Approx(0).margin(1e-6));
    CHECK(sum_sq / 4 == Approx(1));
  }
}

TEST_CASE("The LayerNorm reference applies gain and bias per column and tolerates null stats",
          "[kernels]") {
  const std::vector<float> x = {3, 3, 3, 1, 2, 3};
  const std::vector<float> weight = {2, 0.5f, -1};
  const std::vector<float> bias = {1, 2, 3};
  std::vector<float> out(6);
  LayerNormForwardRef(out.data(), nullptr, nullptr, x.data(), weight.data(), bias.data(), 2, 3,
                      1e-5f);
  // A constant row normalizes to zero, leaving only the bias.
  CHECK(out[0] == Approx(1));
  CHECK(out[1] == Approx(2));
  CHECK(out[2] == Approx(3));
  const double rstd = 1 / std::sqrt(2.0 / 3.0 + 1e-5);
  CHECK(out[3] == Approx(-1 * rstd * 2 + 1));
  CHECK(out[4] == Approx(2));
  CHECK(out[5] == Approx(1 * rstd * -1 + 3));
}

}  // namespace
}  // namespace scalelab::kernels
