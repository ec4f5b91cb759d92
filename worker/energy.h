// The energy one attempt uses, measured by the worker while its trainer runs and reported in
// CompleteRunRequest.energy (v1::EnergyReport). Sources, the first that works:
//
//  - "nvml", GPU runs: each placed GPU's energy counter (nvmlDeviceGetTotalEnergyConsumption,
//    Volta and later) read at start and end; where a GPU has none, the power draw of every
//    placed GPU (nvmlDeviceGetPowerUsage) read at each Sample() and integrated over time
//    (trapezoids). All of a GPU's energy is the run's: placement gives a GPU to one run at a
//    time. The CPU slot that drives the GPUs is not counted.
//  - "rapl", CPU runs: the CPU package counters <powercap_root>/intel-rapl:<N>/energy_uj (package
//    domains only: core, uncore and dram subdomains are inside their package, and psys holds
//    more than the CPUs), read at each Sample() so that a counter wrapping at
//    max_energy_range_uj (about 262 kJ: minutes at full power) is seen at most once between two
//    reads. Attribution: the packages' energy over the attempt x the run's CPU slots / the
//    node's CPU slots (the worker's cpu_slots), capped at 1. Every slot of the node stands for an
//    equal share of the packages, busy or not, so runs that overlap never add up to more than
//    was measured, and the share of idle slots is charged to no run.
//  - "model" otherwise (no NVML, powercap missing or unreadable, as energy_uj is for non-root
//    users since Linux 5.10, or a counter failing mid-attempt): devices x watts per device x
//    wall seconds.
//
// Devices: a GPU run counts its GPUs (device_kind "gpu"); a CPU run its CPU slots,
// max(resources.cpus, 1), as the scheduler's placement counts them (device_kind "cpu").
// device_seconds = devices x wall_s, wall_s from the meter's start to Finish on the agent's
// clock.
#ifndef SCALELAB_WORKER_ENERGY_H_
#define SCALELAB_WORKER_ENERGY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::worker {

struct EnergyOptions {
  // Folder of the powercap zones; "" = never read RAPL (CPU runs use the power model).
  std::string powercap_root = "/sys/class/powercap";
  bool use_nvml = true;  // false = GPU runs use the power model
  // Power model, watts per device while an attempt runs. A CPU slot is about one busy core of a
  // server package; a GPU is a busy data-center GPU, below an H100/H200's 700 W peak.
  double cpu_slot_watts = 10;
  double gpu_watts = 400;
  // Counters are read at most this often while an attempt runs (and at its start and end).
  absl::Duration sample_interval = absl::Seconds(1);

  // InvalidArgument naming the field: watts must be finite and >= 0, the interval > 0.
  absl::Status Validate() const;
};

// GPU energy and power counters, by node GPU index (the PCI bus order of worker/inventory.h,
// which is NVML's index order). Implementations are thread-safe.
class GpuEnergySource {
 public:
  virtual ~GpuEnergySource() = default;
  // Millijoules the GPU used since the driver loaded. Unimplemented for a GPU without an
  // energy counter (before Volta).
  virtual absl::StatusOr<uint64_t> TotalEnergyMj(int gpu_index) = 0;
  // Milliwatts it draws now.
  virtual absl::StatusOr<uint32_t> PowerMw(int gpu_index) = 0;
};

// NVML from libnvidia-ml.so.1 (dlopen: no link-time dependency), initialized. Unavailable when
// the library or the driver is missing.
absl::StatusOr<std::unique_ptr<GpuEnergySource>> OpenNvml();

// Measures one attempt. Not thread-safe: one thread starts it, samples it and finishes it.
class EnergyMeter {
 public:
  // Starts measuring `spec`'s attempt (its devices: execution.gpu_indices, resources.cpus) at
  // `now`. `gpus` may be null (no NVML); not owned, it must outlive the meter. Never fails: what
  // cannot be measured is modelled.
  EnergyMeter(const EnergyOptions& options, int node_cpu_slots, const v1::RunSpec& spec,
              GpuEnergySource* gpus, absl::Time now);

  // Reads the counters when sample_interval has passed since the last read.
  void Sample(absl::Time now);
  // Reads the counters a last time and reports. Call once; the meter is spent afterwards.
  v1::EnergyReport Finish(absl::Time now);

  // "nvml", "rapl" or "model" as things stand, and why when it is "model" (for the log).
  const std::string& source() const { return source_; }
  const std::string& fallback_reason() const { return fallback_reason_; }

 private:
  struct RaplDomain {
    std::string energy_path;
    uint64_t max_range_uj = 0;
    uint64_t last_uj = 0;
  };
  void StartGpus(GpuEnergySource* gpus);
  void StartRapl(const std::string& powercap_root);
  void Read(absl::Time now);
  void FallBack(std::string reason);

  EnergyOptions options_;
  std::string device_kind_;
  int devices_ = 0;
  double rapl_share_ = 0;  // run's CPU slots / node's, capped at 1
  std::vector<int> gpu_indices_;
  GpuEnergySource* gpus_ = nullptr;
  absl::Time start_;
  absl::Time last_read_;
  std::string source_ = "model";
  std::string fallback_reason_;
  std::vector<RaplDomain> rapl_;        // source "rapl"
  std::vector<uint64_t> gpu_start_mj_;  // source "nvml" with energy counters
  bool gpu_power_sampling_ = false;     // source "nvml" without them
  double last_power_w_ = 0;             // all placed GPUs at last_read_
  double measured_j_ = 0;               // RAPL (before the share) or integrated GPU power
};

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_ENERGY_H_
