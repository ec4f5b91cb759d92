#include "services/analysis/carbon.h"

#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace scalelab::analysis {
namespace {

constexpr double kJoulesPerKwh = 3.6e6;
constexpr double kSecondsPerHour = 3600;

absl::Status CheckAtLeast(const char* field, double value, double lower) {
  if (std::isfinite(value) && value >= lower) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("carbon.", field, ": expected a finite number >= ", lower, ", got ", value));
}

absl::Status CheckPositive(const char* field, double value) {
  if (std::isfinite(value) && value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("carbon.", field, ": expected a finite number > 0, got ", value));
}

}  // namespace

absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view text) {
  if (text == "gpu") return DeviceKind::kGpu;
  if (text == "cpu") return DeviceKind::kCpu;
  return absl::InvalidArgumentError(
      absl::StrCat("device_kind: expected \"gpu\" or \"cpu\", got \"", text.substr(0, 80), "\""));
}

absl::Status CarbonAssumptions::Validate() const {
  const std::pair<const char*, double> non_negative[] = {
      {"grid_g_per_kwh", grid_g_per_kwh},
      {"gpu_embodied_kg", gpu_embodied_kg},
      {"cpu_slot_embodied_kg", cpu_slot_embodied_kg},
      {"gpu_tdp_w", gpu_tdp_w},
      {"cpu_slot_w", cpu_slot_w}};
  if (auto status = CheckAtLeast("pue", pue, 1); !status.ok()) return status;
  for (const auto& [field, value] : non_negative) {
    if (auto status = CheckAtLeast(field, value, 0); !status.ok()) return status;
  }
  if (auto status = CheckPositive("gpu_lifetime_h", gpu_lifetime_h); !status.ok()) return status;
  if (auto status = CheckPositive("cpu_lifetime_h", cpu_lifetime_h); !status.ok()) return status;
  if (!(gpu_utilisation >= 0 && gpu_utilisation <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("carbon.gpu_utilisation: expected a number in [0, 1], got ", gpu_utilisation));
  }
  return absl::OkStatus();
}

double OperationalCo2eG(double energy_j, const CarbonAssumptions& assumptions) {
  return energy_j / kJoulesPerKwh * assumptions.pue * assumptions.grid_g_per_kwh;
}

double EmbodiedCo2eG(DeviceKind kind, double device_seconds, const CarbonAssumptions& assumptions) {
  const bool gpu = kind == DeviceKind::kGpu;
  const double embodied_g =
      1000 * (gpu ? assumptions.gpu_embodied_kg : assumptions.cpu_slot_embodied_kg);
  const double lifetime_h = gpu ? assumptions.gpu_lifetime_h : assumptions.cpu_lifetime_h;
  return device_seconds / kSecondsPerHour * embodied_g / lifetime_h;
}

CarbonFootprint Footprint(double energy_j, DeviceKind kind, double device_seconds,
                          const CarbonAssumptions& assumptions) {
  CarbonFootprint footprint;
  footprint.operational_g = OperationalCo2eG(energy_j, assumptions);
  footprint.embodied_g = EmbodiedCo2eG(kind, device_seconds, assumptions);
  footprint.total_g = footprint.operational_g + footprint.embodied_g;
  return footprint;
}

double ModelledEnergyJ(DeviceKind kind, int devices, double wall_s,
                       const CarbonAssumptions& assumptions) {
  const double watts = kind == DeviceKind::kGpu
                           ? assumptions.gpu_tdp_w * assumptions.gpu_utilisation
                           : assumptions.cpu_slot_w;
  return watts * devices * wall_s;
}

double Co2ePerLossImprovement(double co2e_g, int64_t vocab_size, double final_loss) {
  if (vocab_size < 2) return std::numeric_limits<double>::quiet_NaN();
  const double improvement = std::log(static_cast<double>(vocab_size)) - final_loss;
  if (!(improvement > 0)) return std::numeric_limits<double>::quiet_NaN();
  return co2e_g / improvement;
}

}  // namespace scalelab::analysis
