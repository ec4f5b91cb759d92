// The fit-group job as another process sees it: request and result survive their text encoding
// exactly, and a group's job fits what FitChinchilla fits.
#include "services/analysis/fit_group_io.h"

#include <cmath>

#include "catch2/catch.hpp"
#include "tests/analysis/synthetic.h"

namespace scalelab::analysis {
namespace {

TEST_CASE("A fit-group request and its result read back exactly from their text", "[analysis]") {
  FitGroupRequest request;
  request.law = "compute";
  request.bootstrap = 7;
  request.seed = 42;
  request.threads = 2;
  request.points = testing::SyntheticPoints(testing::HoffmannParams(), 2, 2, 0.01, 3);
  auto parsed = ParseFitGroupRequest(EncodeFitGroupRequest(request));
  REQUIRE(parsed.ok());
  CHECK(parsed->law == "compute");
  CHECK(parsed->bootstrap == 7);
  CHECK(parsed->seed == 42);
  CHECK(parsed->threads == 2);
  REQUIRE(parsed->points.size() == request.points.size());
  CHECK(parsed->points[3].loss == request.points[3].loss);
  CHECK(parsed->points[3].run_id == request.points[3].run_id);

  FitGroupResult result;
  result.param_names = {"a", "b"};
  result.params = {1.0 / 3, -2e-300};
  result.samples = {1, 2, 3, 4};
  result.objective = 1e-29;
  auto back = ParseFitGroupResult(EncodeFitGroupResult(result));
  REQUIRE(back.ok());
  CHECK(back->params == result.params);
  CHECK(back->samples == result.samples);
  CHECK(back->objective == result.objective);
  CHECK(std::isnan(back->holdout_rel_error));

  FitGroupResult failed;
  failed.error = "chinchilla fit failed:\nno start converged";
  back = ParseFitGroupResult(EncodeFitGroupResult(failed));
  REQUIRE(back.ok());
  CHECK(back->error == "chinchilla fit failed: no start converged");
  CHECK_FALSE(ParseFitGroupRequest("law chinchilla\npoint 1 2 x 4 5\n").ok());
  CHECK_FALSE(ParseFitGroupResult("names a\n").ok());
}

TEST_CASE("A fit-group job recovers a known law with its bootstrap and held-out check",
          "[analysis]") {
  FitGroupRequest request;
  request.bootstrap = 10;
  request.threads = 2;
  request.points = testing::SyntheticPoints(testing::HoffmannParams(), 4, 4, 0, 1);
  FitGroupResult result = RunFitGroup(request);
  REQUIRE(result.error.empty());
  REQUIRE(result.params.size() == 5);
  CHECK(result.params[3] == Approx(0.34).epsilon(1e-3));
  CHECK(result.samples.size() == 50);
  CHECK(result.holdout_rel_error < 1e-3);
  request.points.resize(3);
  CHECK_FALSE(RunFitGroup(request).error.empty());
}

}  // namespace
}  // namespace scalelab::analysis
