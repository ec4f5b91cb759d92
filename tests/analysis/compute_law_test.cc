#include "services/analysis/compute_law.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace scalelab::analysis {
namespace {

std::vector<ScalingPoint> ComputePoints(const ComputeLawParams& truth, double log_sigma,
                                        uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, log_sigma);
  std::vector<ScalingPoint> points;
  for (int idx = 0; idx < 30; ++idx) {
    ScalingPoint point;
    point.flops = std::pow(10.0, 17 + 7.0 * idx / 29);
    point.loss = PredictLoss(truth, point.flops) * (log_sigma > 0 ? std::exp(noise(rng)) : 1.0);
    points.push_back(point);
  }
  return points;
}

ComputeLawParams Truth() {
  ComputeLawParams truth;
  truth.gamma = 0.155;
  truth.log_k = std::log(1070.0);  // L(C) = 1.69 + 1070 C^-0.155 (Hoffmann et al.-like)
  truth.e = std::log(1.69);
  return truth;
}

TEST_CASE("The compute law recovers a known law from noise-free points", "[analysis]") {
  const ComputeLawParams truth = Truth();
  absl::StatusOr<ComputeLawFit> fit = FitComputeLaw(ComputePoints(truth, 0, 1));
  REQUIRE(fit.ok());
  CHECK(fit->starts_tried == 245);
  CHECK(fit->objective < 1e-12);
  CHECK(fit->params.gamma == Approx(truth.gamma).epsilon(1e-4));
  CHECK(fit->params.E() == Approx(truth.E()).epsilon(1e-4));
  CHECK(fit->params.k() == Approx(truth.k()).epsilon(1e-3));
}

TEST_CASE("The compute law recovers a known law from noisy points with intervals around it",
          "[analysis]") {
  const ComputeLawParams truth = Truth();
  const std::vector<ScalingPoint> points = ComputePoints(truth, 0.003, 9);
  absl::StatusOr<ComputeLawFit> fit = FitComputeLaw(points);
  REQUIRE(fit.ok());
  CHECK(fit->params.gamma == Approx(truth.gamma).margin(0.02));
  CHECK(fit->params.E() == Approx(truth.E()).epsilon(0.03));
  BootstrapOptions bootstrap;
  bootstrap.samples = 200;
  absl::StatusOr<BootstrapSamples> samples = BootstrapComputeLaw(points, *fit, {}, bootstrap);
  REQUIRE(samples.ok());
  CHECK(samples->param_names == ComputeLawParamNames());
  absl::StatusOr<std::vector<Estimate>> estimates =
      EstimateParams(*samples, fit->params.ToVector(), 0.95);
  REQUIRE(estimates.ok());
  const Estimate& gamma = (*estimates)[2];
  INFO("gamma [" << gamma.lo << ", " << gamma.hi << "]");
  CHECK(gamma.lo <= truth.gamma);
  CHECK(truth.gamma <= gamma.hi);
  absl::StatusOr<Estimate> loss_at_1e25 = EstimateDerived(
      *samples, fit->params.ToVector(),
      [](absl::Span<const double> row) {
        return PredictLoss(ComputeLawParams::FromVector(row), 1e25);
      },
      0.95);
  REQUIRE(loss_at_1e25.ok());
  CHECK(loss_at_1e25->lo <= PredictLoss(truth, 1e25));
  CHECK(PredictLoss(truth, 1e25) <= loss_at_1e25->hi);
}

TEST_CASE("The compute law refuses points without FLOPs and bad options", "[analysis]") {
  std::vector<ScalingPoint> points = ComputePoints(Truth(), 0, 1);
  points[3].flops = 0;
  absl::StatusOr<ComputeLawFit> fit = FitComputeLaw(points);
  CHECK(fit.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(fit.status().message().find("point 3: flops") != std::string::npos);
  ComputeLawOptions options;
  options.gamma_starts.clear();
  CHECK(FitComputeLaw(ComputePoints(Truth(), 0, 1), options)
            .status()
            .message()
            .find("compute_law.gamma_starts") != std::string::npos);
}

}  // namespace
}  // namespace scalelab::analysis
