#include "services/analysis/comparison.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "services/analysis/allocation.h"
#include "synthetic.h"

namespace scalelab::analysis {
namespace {

TEST_CASE("Tokens to reach a loss invert the law, and are infinite below the model's floor",
          "[analysis]") {
  const ChinchillaParams params = testing::HoffmannParams();
  const double n = 1e9;
  absl::StatusOr<double> tokens = TokensToReachLoss(params, n, 2.2);
  REQUIRE(tokens.ok());
  CHECK(Predict(params, n, *tokens) == Approx(2.2).epsilon(1e-12));
  const double floor = params.E() + params.A() * std::pow(n, -params.alpha);
  absl::StatusOr<double> unreachable = TokensToReachLoss(params, n, floor * 0.999);
  REQUIRE(unreachable.ok());
  CHECK(std::isinf(*unreachable));
  CHECK(TokensToReachLoss(params, -1, 2.2).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("The data-efficiency multiplier of two laws differing only in B is (B1/B2)^(1/beta)",
          "[analysis]") {
  ChinchillaParams slower = testing::HoffmannParams();
  ChinchillaParams faster = slower;
  faster.b = slower.b - std::log(2.0);  // half the B: the same loss with fewer tokens
  absl::StatusOr<double> multiplier = DataEfficiencyMultiplier(slower, faster, 1e9, 2.2);
  REQUIRE(multiplier.ok());
  CHECK(*multiplier == Approx(std::pow(2.0, 1 / slower.beta)).epsilon(1e-10));
  // The same at any model size and reachable target.
  CHECK(*DataEfficiencyMultiplier(slower, faster, 3e8, 2.5) ==
        Approx(std::pow(2.0, 1 / slower.beta)).epsilon(1e-10));
  absl::StatusOr<double> unreachable = DataEfficiencyMultiplier(slower, faster, 1e9, 1.7);
  CHECK(unreachable.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(unreachable.status().message().find("slower group cannot reach") != std::string::npos);
}

TEST_CASE("The multiplier of two fitted synthetic groups has an interval around the known ratio",
          "[analysis]") {
  const ChinchillaParams slow_truth = testing::HoffmannParams();
  ChinchillaParams fast_truth = slow_truth;
  fast_truth.b = slow_truth.b - std::log(2.0);
  BootstrapOptions bootstrap;
  bootstrap.samples = 100;
  absl::StatusOr<GroupFit> slower =
      FitGroup("baseline", testing::SyntheticPoints(slow_truth, 6, 6, 0.002, 1),
               testing::CoarseGridOptions(), bootstrap);
  absl::StatusOr<GroupFit> faster =
      FitGroup("rephrased", testing::SyntheticPoints(fast_truth, 6, 6, 0.002, 2),
               testing::CoarseGridOptions(), bootstrap);
  REQUIRE(slower.ok());
  REQUIRE(faster.ok());
  absl::StatusOr<Estimate> multiplier =
      EstimateDataEfficiencyMultiplier(*slower, *faster, 1e9, 2.3);
  REQUIRE(multiplier.ok());
  const double truth = std::pow(2.0, 1 / slow_truth.beta);
  INFO(multiplier->value << " [" << multiplier->lo << ", " << multiplier->hi << "] vs " << truth);
  CHECK(multiplier->value == Approx(truth).epsilon(0.15));
  CHECK(multiplier->lo <= truth);
  CHECK(truth <= multiplier->hi);
  CHECK(multiplier->samples_used + multiplier->samples_skipped == 100);
}

TEST_CASE("The holdout check predicts the largest model from the smaller ones", "[analysis]") {
  const ChinchillaParams truth = testing::HoffmannParams();
  const std::vector<ScalingPoint> points = testing::SyntheticPoints(truth, 5, 4, 0.0, 1);
  absl::StatusOr<HoldoutResult> holdout = HoldoutLargestModel(points, testing::CoarseGridOptions());
  REQUIRE(holdout.ok());
  CHECK(holdout->held_out_n_params == Approx(1e10));
  CHECK(holdout->held_out_points == 4);
  CHECK(holdout->fit_points == 16);
  REQUIRE(holdout->predicted.size() == 4);
  CHECK(holdout->mean_relative_error < 1e-4);

  // A law fitted to noisy points extrapolates with a small, non-zero error.
  absl::StatusOr<HoldoutResult> noisy = HoldoutLargestModel(
      testing::SyntheticPoints(truth, 5, 4, 0.01, 4), testing::CoarseGridOptions());
  REQUIRE(noisy.ok());
  CHECK(noisy->mean_relative_error > 0);
  CHECK(noisy->mean_relative_error < 0.05);
}

TEST_CASE("The holdout check needs three model sizes besides the largest", "[analysis]") {
  const std::vector<ScalingPoint> points =
      testing::SyntheticPoints(testing::HoffmannParams(), 3, 4, 0.0, 1);
  absl::StatusOr<HoldoutResult> holdout = HoldoutLargestModel(points, testing::CoarseGridOptions());
  CHECK(holdout.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(holdout.status().message().find("2 distinct model sizes") != std::string::npos);
}

}  // namespace
}  // namespace scalelab::analysis
