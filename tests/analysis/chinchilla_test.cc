#include "services/analysis/chinchilla.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "services/analysis/csv_points.h"
#include "synthetic.h"

namespace scalelab::analysis {
namespace {

// Epoch AI's 240 points: their CSV less its 5 highest-loss rows, as their refit does.
std::vector<ScalingPoint> EpochPoints() {
  absl::StatusOr<std::vector<ScalingPoint>> points = ReadScalingPointsCsv(
      std::string(SCALELAB_ANALYSIS_TESTDATA_DIR) + "/chinchilla_svg_extracted_data.csv");
  REQUIRE(points.ok());
  REQUIRE(points->size() == 245);
  return WithoutHighestLoss(*points, 5);
}

// Whether `value` rounds to `reference`, which is given to four significant figures.
bool SameToFourFigures(double value, double reference) {
  const double unit = std::pow(10.0, std::floor(std::log10(std::fabs(reference))) - 3);
  return std::fabs(value - reference) <= 0.5 * unit * (1 + 1e-9);
}

TEST_CASE("The Chinchilla fit reproduces Epoch AI's grid-best refit to four figures",
          "[analysis]") {
  const std::vector<ScalingPoint> points = EpochPoints();
  REQUIRE(points.size() == 240);
  absl::StatusOr<ChinchillaFit> fit = FitChinchilla(points);
  REQUIRE(fit.ok());
  INFO("objective " << fit->objective << " A " << fit->params.A() << " B " << fit->params.B()
                    << " E " << fit->params.E() << " alpha " << fit->params.alpha << " beta "
                    << fit->params.beta);
  CHECK(fit->starts_tried == 4500);
  CHECK(fit->starts_converged > 4000);
  CHECK(fit->num_points == 240);
  CHECK(SameToFourFigures(fit->objective, 0.0010182741));
  CHECK(SameToFourFigures(fit->params.A(), 477.8));
  CHECK(SameToFourFigures(fit->params.B(), 2143));
  CHECK(SameToFourFigures(fit->params.E(), 1.8172));
  CHECK(SameToFourFigures(fit->params.alpha, 0.3473));
  CHECK(SameToFourFigures(fit->params.beta, 0.3672));
  // The objective reported is the objective at the parameters reported.
  absl::StatusOr<double> objective = ChinchillaObjective(points, fit->params);
  REQUIRE(objective.ok());
  CHECK(*objective == Approx(fit->objective).epsilon(1e-12));
}

TEST_CASE("The Chinchilla fit recovers a known law from noisy synthetic points", "[analysis]") {
  const ChinchillaParams truth = testing::HoffmannParams();
  const std::vector<ScalingPoint> points = testing::SyntheticPoints(truth, 8, 8, 0.002, 7);
  absl::StatusOr<ChinchillaFit> fit = FitChinchilla(points, testing::CoarseGridOptions());
  REQUIRE(fit.ok());
  CHECK(fit->params.alpha == Approx(truth.alpha).margin(0.02));
  CHECK(fit->params.beta == Approx(truth.beta).margin(0.02));
  CHECK(fit->params.E() == Approx(truth.E()).epsilon(0.02));
  CHECK(fit->params.a == Approx(truth.a).margin(0.3));
  CHECK(fit->params.b == Approx(truth.b).margin(0.3));
}

TEST_CASE("The Chinchilla fit recovers noise-free points almost exactly", "[analysis]") {
  const ChinchillaParams truth = testing::HoffmannParams();
  const std::vector<ScalingPoint> points = testing::SyntheticPoints(truth, 6, 6, 0.0, 1);
  absl::StatusOr<ChinchillaFit> fit = FitChinchilla(points, testing::CoarseGridOptions());
  REQUIRE(fit.ok());
  CHECK(fit->objective < 1e-12);
  CHECK(fit->params.alpha == Approx(truth.alpha).epsilon(1e-4));
  CHECK(fit->params.beta == Approx(truth.beta).epsilon(1e-4));
  CHECK(fit->params.E() == Approx(truth.E()).epsilon(1e-4));
}

TEST_CASE("The Chinchilla fit gives the same answer on one thread and on several", "[analysis]") {
  const std::vector<ScalingPoint> points =
      testing::SyntheticPoints(testing::HoffmannParams(), 5, 5, 0.01, 3);
  ChinchillaOptions options = testing::CoarseGridOptions();
  options.threads = 1;
  absl::StatusOr<ChinchillaFit> one = FitChinchilla(points, options);
  options.threads = 3;
  absl::StatusOr<ChinchillaFit> three = FitChinchilla(points, options);
  REQUIRE(one.ok());
  REQUIRE(three.ok());
  CHECK(one->objective == three->objective);
  CHECK(one->params.ToVector() == three->params.ToVector());
  CHECK(one->starts_converged == three->starts_converged);
}

TEST_CASE("Chinchilla options name the field they reject", "[analysis]") {
  ChinchillaOptions options;
  CHECK(options.Validate().ok());
  options.huber_delta = 0;
  CHECK(options.Validate().message().find("chinchilla.huber_delta") != std::string::npos);
  options = ChinchillaOptions();
  options.alpha_starts.clear();
  CHECK(options.Validate().message().find("chinchilla.alpha_starts") != std::string::npos);
  options = ChinchillaOptions();
  options.e_starts = {0, NAN};
  CHECK(options.Validate().message().find("chinchilla.e_starts[1]") != std::string::npos);
  options = ChinchillaOptions();
  options.threads = -1;
  CHECK(options.Validate().message().find("chinchilla.threads") != std::string::npos);
  options = ChinchillaOptions();
  options.solver.max_iterations = 0;
  CHECK(options.Validate().message().find("solver.max_iterations") != std::string::npos);
}

TEST_CASE("The Chinchilla fit refuses too few points and points it cannot take logs of",
          "[analysis]") {
  std::vector<ScalingPoint> points =
      testing::SyntheticPoints(testing::HoffmannParams(), 2, 2, 0.0, 1);
  absl::StatusOr<ChinchillaFit> fit = FitChinchilla(points, testing::CoarseGridOptions());
  CHECK(fit.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(fit.status().message().find("at least 5 points") != std::string::npos);

  points = testing::SyntheticPoints(testing::HoffmannParams(), 3, 3, 0.0, 1);
  points[4].tokens = 0;
  fit = FitChinchilla(points, testing::CoarseGridOptions());
  CHECK(fit.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(fit.status().message().find("point 4: tokens") != std::string::npos);
}

TEST_CASE("WithoutHighestLoss drops the highest losses and keeps the order of the rest",
          "[analysis]") {
  std::vector<ScalingPoint> points(5);
  const double losses[] = {3.0, 5.0, 2.0, 4.0, 1.0};
  for (int idx = 0; idx < 5; ++idx) points[idx].loss = losses[idx];
  const std::vector<ScalingPoint> kept = WithoutHighestLoss(points, 2);
  REQUIRE(kept.size() == 3);
  CHECK(kept[0].loss == 3.0);
  CHECK(kept[1].loss == 2.0);
  CHECK(kept[2].loss == 1.0);
  CHECK(WithoutHighestLoss(points, 9).empty());
}

}  // namespace
}  // namespace scalelab::analysis
