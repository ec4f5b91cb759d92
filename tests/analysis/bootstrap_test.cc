#include "services/analysis/bootstrap.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "services/analysis/chinchilla.h"
#include "synthetic.h"

namespace scalelab::analysis {
namespace {

TEST_CASE("Resample indices depend on the seed and the resample number only", "[analysis]") {
  const std::vector<size_t> first = ResampleIndices(100, 42, 7);
  CHECK(first == ResampleIndices(100, 42, 7));
  CHECK(first != ResampleIndices(100, 42, 8));
  CHECK(first != ResampleIndices(100, 43, 7));
  for (size_t index : first) CHECK(index < 100);
  // With replacement: 100 draws from 100 hit ~63 distinct points, never all of them.
  std::vector<bool> seen(100, false);
  int distinct = 0;
  for (size_t index : first) distinct += seen[index] ? 0 : (seen[index] = true, 1);
  CHECK(distinct > 50);
  CHECK(distinct < 80);
}

TEST_CASE("A Chinchilla bootstrap is the same for a seed whatever the thread count", "[analysis]") {
  const ChinchillaParams truth = testing::HoffmannParams();
  const std::vector<ScalingPoint> points = testing::SyntheticPoints(truth, 5, 5, 0.005, 11);
  ChinchillaFit full;
  full.params = truth;
  BootstrapOptions bootstrap;
  bootstrap.samples = 24;
  bootstrap.seed = 5;
  bootstrap.threads = 1;
  absl::StatusOr<BootstrapSamples> one = BootstrapChinchilla(points, full, {}, bootstrap);
  bootstrap.threads = 3;
  absl::StatusOr<BootstrapSamples> three = BootstrapChinchilla(points, full, {}, bootstrap);
  bootstrap.seed = 6;
  absl::StatusOr<BootstrapSamples> other_seed = BootstrapChinchilla(points, full, {}, bootstrap);
  REQUIRE(one.ok());
  REQUIRE(three.ok());
  REQUIRE(other_seed.ok());
  CHECK(one->num_samples() == 24);
  CHECK(one->failed == 0);
  CHECK(one->param_names == ChinchillaParamNames());
  CHECK(one->values == three->values);
  CHECK(one->values != other_seed->values);
}

TEST_CASE("Bootstrap intervals of a noisy synthetic fit contain the true parameters",
          "[analysis]") {
  const ChinchillaParams truth = testing::HoffmannParams();
  const std::vector<ScalingPoint> points = testing::SyntheticPoints(truth, 6, 6, 0.005, 21);
  absl::StatusOr<ChinchillaFit> fit = FitChinchilla(points, testing::CoarseGridOptions());
  REQUIRE(fit.ok());
  BootstrapOptions bootstrap;
  bootstrap.samples = 200;
  bootstrap.seed = 3;
  absl::StatusOr<BootstrapSamples> samples = BootstrapChinchilla(points, *fit, {}, bootstrap);
  REQUIRE(samples.ok());
  absl::StatusOr<ChinchillaEstimates> estimates = EstimateChinchilla(fit->params, *samples);
  REQUIRE(estimates.ok());
  auto contains = [](const Estimate& estimate, double value) {
    INFO("[" << estimate.lo << ", " << estimate.hi << "] vs " << value);
    CHECK(estimate.lo <= estimate.value);
    CHECK(estimate.value <= estimate.hi);
    CHECK(estimate.lo <= value);
    CHECK(value <= estimate.hi);
  };
  contains(estimates->alpha, truth.alpha);
  contains(estimates->beta, truth.beta);
  contains(estimates->E, truth.E());
  contains(estimates->A, truth.A());
  contains(estimates->B, truth.B());
  CHECK(estimates->alpha.samples_used == 200);
}

TEST_CASE("Percentile intervals interpolate like numpy and skip non-finite samples", "[analysis]") {
  std::vector<double> samples;
  for (int value = 0; value <= 100; ++value) samples.push_back(value);
  samples.push_back(std::numeric_limits<double>::infinity());
  samples.push_back(std::numeric_limits<double>::quiet_NaN());
  absl::StatusOr<Estimate> estimate = PercentileEstimate(50, samples, 0.95);
  REQUIRE(estimate.ok());
  CHECK(estimate->value == 50);
  CHECK(estimate->lo == Approx(2.5));
  CHECK(estimate->hi == Approx(97.5));
  CHECK(estimate->samples_used == 101);
  CHECK(estimate->samples_skipped == 2);

  CHECK(PercentileEstimate(0, samples, 1.0).status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(PercentileEstimate(0, {NAN}, 0.9).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("A derived quantity maps every sample row and the best parameters", "[analysis]") {
  BootstrapSamples samples;
  samples.param_names = {"x", "y"};
  samples.values = {1, 2, 3, 4, 5, 0};  // rows (1,2) (3,4) (5,0)
  const std::vector<double> best = {2, 4};
  absl::StatusOr<Estimate> ratio = EstimateDerived(
      samples, best, [](absl::Span<const double> row) { return row[0] / row[1]; }, 0.5);
  REQUIRE(ratio.ok());
  CHECK(ratio->value == 0.5);
  CHECK(ratio->samples_used == 2);  // 5 / 0 is skipped
  CHECK(ratio->samples_skipped == 1);
  absl::StatusOr<std::vector<Estimate>> params = EstimateParams(samples, best, 0.5);
  REQUIRE(params.ok());
  REQUIRE(params->size() == 2);
  CHECK((*params)[0].lo == Approx(2));  // 25th percentile of 1, 3, 5
  CHECK((*params)[0].hi == Approx(4));
}

TEST_CASE("A bootstrap counts the refits that fail and fails when all do", "[analysis]") {
  const std::vector<ScalingPoint> points =
      testing::SyntheticPoints(testing::HoffmannParams(), 3, 3, 0.0, 1);
  BootstrapOptions options;
  options.samples = 10;
  int calls = 0;
  absl::StatusOr<BootstrapSamples> samples = Bootstrap(
      points, {"p"},
      [&](absl::Span<const ScalingPoint>) -> absl::StatusOr<std::vector<double>> {
        return absl::InternalError("no");
      },
      options);
  CHECK(samples.status().code() == absl::StatusCode::kFailedPrecondition);
  options.threads = 1;
  samples = Bootstrap(
      points, {"p"},
      [&](absl::Span<const ScalingPoint> resample) -> absl::StatusOr<std::vector<double>> {
        if (calls++ % 2 == 0) return absl::InternalError("no");
        return std::vector<double>{static_cast<double>(resample.size())};
      },
      options);
  REQUIRE(samples.ok());
  CHECK(samples->requested == 10);
  CHECK(samples->failed == 5);
  CHECK(samples->num_samples() == 5);
  options.samples = 0;
  CHECK(options.Validate().message().find("bootstrap.samples") != std::string::npos);
}

}  // namespace
}  // namespace scalelab::analysis
