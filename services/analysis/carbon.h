// Carbon accounting for training runs: operational emissions from energy, embodied emissions
// from the hardware's share of its manufacture, and a power model for runs without an energy
// measurement. Pure arithmetic, no I/O; every quantity is in grams of CO2-equivalent (g CO2e).
//
//   operational_g = energy_j / 3.6e6 [kWh] x pue x grid_g_per_kwh
//   embodied_g    = device_s / 3600 [h] x embodied_g_per_device / lifetime_h
//
// The defaults are round, documented figures for a first estimate; a deployment should set its
// own (its data centre's PUE, its grid's intensity, its hardware's LCA).
#ifndef SCALELAB_SERVICES_ANALYSIS_CARBON_H_
#define SCALELAB_SERVICES_ANALYSIS_CARBON_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace scalelab::analysis {

// What a run used: GPUs, or CPU slots (the worker's unit for CPU runs: one slot = one core).
enum class DeviceKind { kGpu, kCpu };

// "gpu" or "cpu" (the run_attempts.device_kind values); InvalidArgument otherwise.
absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view text);

struct CarbonAssumptions {
  // Power usage effectiveness: facility energy / IT energy. 1.2 is typical of a modern
  // hyperscale or HPC data centre (Uptime Institute's 2023 survey average is ~1.58; Google
  // reports ~1.10 fleet-wide).
  double pue = 1.2;
  // Grid carbon intensity, g CO2e per kWh. 400 is a round figure near the world average
  // (~0.4-0.48 kg/kWh in IEA and Ember reviews for 2022-2023; the US is ~0.37, the EU ~0.25).
  double grid_g_per_kwh = 400;
  // Embodied emissions of one GPU, kg CO2e: about 150 kg is the per-GPU figure Luccioni et al.
  // (2022, "Estimating the carbon footprint of BLOOM") used for an A100-class card; H100-class
  // cards are similar in die and memory area. The card only: their estimate for the 8-GPU server
  // around it is a further ~2500 kg, so add ~310 kg per GPU to include the host's share.
  double gpu_embodied_kg = 150;
  // Embodied emissions per CPU slot (one core), kg CO2e: vendors' product carbon footprints put
  // the manufacture of a dual-socket server at the order of a tonne; over its ~64-128 cores that
  // is ~10 kg a core.
  double cpu_slot_embodied_kg = 10;
  // Service lifetimes over which embodied emissions are amortised: 5 years, a common
  // depreciation period for servers and accelerators.
  double gpu_lifetime_h = 5 * 365 * 24;
  double cpu_lifetime_h = 5 * 365 * 24;
  // Power model for runs without a measured energy: TDP x utilisation. 700 W is an H100/H200
  // SXM's TDP; training draws ~60-80% of it on average, so 0.7.
  double gpu_tdp_w = 700;
  double gpu_utilisation = 0.7;
  // Per CPU slot (core) of a loaded server CPU: ~250-350 W over 32 cores is ~10 W a core.
  double cpu_slot_w = 10;

  // InvalidArgument naming the field when pue < 1, a lifetime is not positive, or any figure
  // is negative or not finite (utilisation must be in [0, 1]).
  absl::Status Validate() const;
};

// Operational emissions of `energy_j` joules of IT energy.
double OperationalCo2eG(double energy_j, const CarbonAssumptions& assumptions);

// Embodied emissions of `device_seconds` device-seconds of `kind` (GPUs or CPU slots times wall
// seconds).
double EmbodiedCo2eG(DeviceKind kind, double device_seconds, const CarbonAssumptions& assumptions);

struct CarbonFootprint {
  double operational_g = 0;
  double embodied_g = 0;
  double total_g = 0;
};

// Both parts for one run or attempt.
CarbonFootprint Footprint(double energy_j, DeviceKind kind, double device_seconds,
                          const CarbonAssumptions& assumptions);

// Modelled IT energy, joules, of `devices` devices of `kind` for wall_s seconds: GPUs at
// gpu_tdp_w x gpu_utilisation, CPU slots at cpu_slot_w. For attempts with no measurement.
double ModelledEnergyJ(DeviceKind kind, int devices, double wall_s,
                       const CarbonAssumptions& assumptions);

// g CO2e per nat of loss improvement, the improvement being over a uniform guess:
// ln(vocab_size) - final_loss. NaN when the improvement is not positive (or vocab_size < 2).
double Co2ePerLossImprovement(double co2e_g, int64_t vocab_size, double final_loss);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_CARBON_H_
