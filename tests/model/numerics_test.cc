#include <catch2/catch.hpp>
#include <vector>

#include "absl/status/status.h"
#include "bench/wasserstein.h"

namespace scalelab::bench {
namespace {

TEST_CASE("W1 of two equal-size samples is the mean gap between their sorted values",
          "[numerics]") {
  CHECK(*Wasserstein1({0, 1}, {1, 2}) == Approx(1.0));
  // Sorted: {0, 0, 3} against {1, 1, 1}: gaps 1, 1, 2.
  CHECK(*Wasserstein1({3, 0, 0}, {1, 1, 1}) == Approx(4.0 / 3.0));
  CHECK(*Wasserstein1({-2.5}, {4}) == Approx(6.5));
}

TEST_CASE("W1 ignores order, is zero for a permutation and symmetric", "[numerics]") {
  const std::vector<double> a = {0.3, -1.2, 5.0, 2.2, 0.0};
  const std::vector<double> permuted = {5.0, 0.0, 0.3, 2.2, -1.2};
  CHECK(*Wasserstein1(a, permuted) == 0.0);
  const std::vector<double> b = {1.0, 1.5, -3.0, 0.5, 0.25};
  CHECK(*Wasserstein1(a, b) == Approx(*Wasserstein1(b, a)));
  std::vector<double> shifted = a;
  for (double& value : shifted) value += 0.125;
  CHECK(*Wasserstein1(a, shifted) == Approx(0.125));
}

TEST_CASE("W1 refuses samples of different or zero size", "[numerics]") {
  const auto unequal = Wasserstein1({1, 2, 3}, {1, 2});
  REQUIRE_FALSE(unequal.ok());
  CHECK(unequal.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(unequal.status().message().find("sizes 3 and 2") != std::string::npos);
  CHECK_FALSE(Wasserstein1({}, {}).ok());
}

}  // namespace
}  // namespace scalelab::bench
