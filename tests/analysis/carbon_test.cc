#include "services/analysis/carbon.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <string>

namespace scalelab::analysis {
namespace {

TEST_CASE("Operational carbon is kWh times PUE times grid intensity", "[analysis]") {
  const CarbonAssumptions defaults;
  REQUIRE(defaults.Validate().ok());
  // 1 kWh x 1.2 x 400 g/kWh.
  CHECK(OperationalCo2eG(3.6e6, defaults) == Approx(480));
  CarbonAssumptions clean;
  clean.pue = 1.1;
  clean.grid_g_per_kwh = 50;
  // 10 MJ = 2.7778 kWh x 1.1 x 50.
  CHECK(OperationalCo2eG(1e7, clean) == Approx(152.7778).epsilon(1e-6));
}

TEST_CASE("Embodied carbon is the device-hours' share of the device's lifetime", "[analysis]") {
  const CarbonAssumptions defaults;
  // 8 GPUs for an hour: 8 h x 150 000 g / 43 800 h.
  CHECK(EmbodiedCo2eG(DeviceKind::kGpu, 8 * 3600, defaults) == Approx(27.39726).epsilon(1e-6));
  // 4 CPU slots for 2 h: 8 h x 10 000 g / 43 800 h.
  CHECK(EmbodiedCo2eG(DeviceKind::kCpu, 4 * 7200, defaults) == Approx(1.826484).epsilon(1e-6));
  const CarbonFootprint footprint = Footprint(3.6e6, DeviceKind::kGpu, 8 * 3600, defaults);
  CHECK(footprint.operational_g == Approx(480));
  CHECK(footprint.total_g == Approx(480 + 27.39726).epsilon(1e-6));
}

TEST_CASE("Modelled energy is devices times watts times seconds", "[analysis]") {
  const CarbonAssumptions defaults;
  // 8 x 700 W x 0.7 x 1000 s.
  CHECK(ModelledEnergyJ(DeviceKind::kGpu, 8, 1000, defaults) == Approx(3.92e6));
  // 2 slots x 10 W x 3600 s.
  CHECK(ModelledEnergyJ(DeviceKind::kCpu, 2, 3600, defaults) == Approx(72000));
}

TEST_CASE("Carbon per nat of improvement is over ln(vocab) and undefined without improvement",
          "[analysis]") {
  // ln(50257) = 10.8249; 10.8249 - 3.0 = 7.8249.
  CHECK(Co2ePerLossImprovement(480, 50257, 3.0) == Approx(480 / 7.824906).epsilon(1e-6));
  CHECK(std::isnan(Co2ePerLossImprovement(480, 256, std::log(256.0))));
  CHECK(std::isnan(Co2ePerLossImprovement(480, 256, 7.0)));
  CHECK(std::isnan(Co2ePerLossImprovement(480, 1, 0.5)));
}

TEST_CASE("Carbon assumptions name the field they reject", "[analysis]") {
  CarbonAssumptions assumptions;
  assumptions.pue = 0.9;
  CHECK(assumptions.Validate().message().find("carbon.pue") != std::string::npos);
  assumptions = CarbonAssumptions();
  assumptions.gpu_lifetime_h = 0;
  CHECK(assumptions.Validate().message().find("carbon.gpu_lifetime_h") != std::string::npos);
  assumptions = CarbonAssumptions();
  assumptions.gpu_utilisation = 1.5;
  CHECK(assumptions.Validate().message().find("carbon.gpu_utilisation") != std::string::npos);
  CHECK(*ParseDeviceKind("gpu") == DeviceKind::kGpu);
  CHECK(*ParseDeviceKind("cpu") == DeviceKind::kCpu);
  CHECK(ParseDeviceKind("tpu").status().message().find("\"tpu\"") != std::string::npos);
}

}  // namespace
}  // namespace scalelab::analysis
