#include "kernels/cross_entropy_ref.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace scalelab::kernels {
namespace {

TEST_CASE("The cross-entropy reference gives log(V) for uniform logits and a zero-sum gradient",
          "[kernels]") {
  const int vocab = 8;
  const std::vector<float> logits(2 * vocab, 3.0f);
  const std::vector<int64_t> targets = {0, 5};
  std::vector<float> loss(2);
  std::vector<float> dlogits(2 * vocab);
  CrossEntropyRef(loss.data(), dlogits.data(), logits.data(), targets.data(), 1.0f, 0.5f, 2, vocab);
  CHECK(loss[0] == Approx(std::log(8.0)));
  CHECK(loss[1] == Approx(std::log(8.0)));
  CHECK(dlogits[0] == Approx((1.0 / 8 - 1) * 0.5));
  CHECK(dlogits[1] == Approx(1.0 / 8 * 0.5));
  CHECK(dlogits[vocab + 5] == Approx((1.0 / 8 - 1) * 0.5));
}

TEST_CASE("The cross-entropy reference is stable for huge logits and skips -inf ones",
          "[kernels]") {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {1000.0f, 1000.0f, -inf, 0.0f};
  const std::vector<int64_t> targets = {1};
  std::vector<float> loss(1);
  std::vector<float> dlogits(4);
  CrossEntropyRef(loss.data(), dlogits.data(), logits.data(), targets.data(), 1.0f, 1.0f, 1, 4);
  CHECK(loss[0] == Approx(std::log(2.0)));
  CHECK(dlogits[0] == Approx(0.5));
  CHECK(dlogits[1] == Approx(-0.5));
  CHECK(dlogits[2] == 0.0f);
  CHECK(dlogits[3] == Approx(0.0).margin(1e-30));
}

TEST_CASE("The cross-entropy reference gradient matches finite differences and may run in place",
          "[kernels]") {
  const int rows = 3, vocab = 11;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(rows * vocab);
  for (float& value : logits) value = normal(rng);
  const std::vector<int64_t> targets = {0, 10, 4};
  const float dloss = 0.7f;
  const float scale = 1.0f / rows;
  std::vector<float> loss(rows);
  std::vector<float> grad = logits;
  CrossEntropyRef(loss.data(), grad.data(), grad.data(), targets.data(), dloss, scale, rows, vocab);
  auto objective = [&](const std::vector<float>& values) {
    std::vector<float> row_loss(rows);
    CrossEntropyRef(row_loss.data(), nullptr, values.data(), targets.data(), 0, 0, rows, vocab);
    double mean = 0;
    for (float value : row_loss) mean += value;
    return dloss * mean / rows;
  };
  const float step = 1e-2f;
  for (size_t idx = 0; idx < logits.size(); ++idx) {
    std::vector<float> plus = logits, minus = logits;
    plus[idx] += step;
    minus[idx] -= step;
    CHECK(grad[idx] == Approx((objective(plus) - objective(minus)) / (2 * step)).margin(1e-4));
  }
}

TEST_CASE("The cross-entropy reference marks an out-of-range target with a NaN loss", "[kernels]") {
  const std::vector<float> logits = {1, 2, 3};
  const std::vector<int64_t> targets = {3};
  std::vector<float> loss(1);
  CrossEntropyRef(loss.data(), nullptr, logits.data(), targets.data(), 0, 0, 1, 3);
  CHECK(std::isnan(loss[0]));
}

}  // namespace
}  // namespace scalelab::kernels
