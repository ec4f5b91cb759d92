#include "worker/energy.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "runspec/text.h"

namespace scalelab::worker {
namespace {

namespace fs = std::filesystem;

// The first line of a small sysfs file, without surrounding whitespace.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "re");
  if (file == nullptr) return absl::ErrnoToStatus(errno, path);
  char buffer[256];
  const size_t got = std::fread(buffer, 1, sizeof(buffer), file);
  const int read_errno = std::ferror(file) != 0 ? errno : 0;
  std::fclose(file);
  if (read_errno != 0) return absl::ErrnoToStatus(read_errno, path);
  return std::string(absl::StripAsciiWhitespace(absl::string_view(buffer, got)));
}

absl::StatusOr<uint64_t> ReadCounter(const std::string& path) {
  absl::StatusOr<std::string> text = ReadSmallFile(path);
  if (!text.ok()) return text.status();
  uint64_t value = 0;
  if (!absl::SimpleAtoi(*text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected a counter, got ", runspec::Quoted(*text)));
  }
  return value;
}

// A package zone is "intel-rapl:<N>"; "intel-rapl:<N>:<M>" are its subdomains.
bool IsPackageZoneName(absl::string_view name) {
  if (!absl::ConsumePrefix(&name, "intel-rapl:") || name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// The counter counts up to max_range and starts again at 0. Reads are frequent enough that it
// wraps at most once between two of them.
uint64_t CounterDelta(uint64_t before, uint64_t after, uint64_t max_range) {
  if (after >= before) return after - before;
  if (before > max_range) return after;  // not this counter's range: count from 0
  return max_range - before + after;
}

// Run's CPU slots as the scheduler's placement counts them (scheduler/resources.h DemandOf).
int CpuSlotsOf(const v1::RunSpec& spec) { return std::max(spec.config().resources().cpus(), 1); }

}  // namespace

absl::Status EnergyOptions::Validate() const {
  for (const auto& [name, watts] :
       {std::pair<const char*, double>{"cpu_slot_watts", cpu_slot_watts},
        {"gpu_watts", gpu_watts}}) {
    if (!std::isfinite(watts) || watts < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": expected a number of watts >= 0, got ", watts));
    }
  }
  if (sample_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("energy sample_interval: expected > 0, got ",
                                                   absl::FormatDuration(sample_interval)));
  }
  return absl::OkStatus();
}

EnergyMeter::EnergyMeter(const EnergyOptions& options, int node_cpu_slots, const v1::RunSpec& spec,
                         GpuEnergySource* gpus, absl::Time now)
    : options_(options), start_(now), last_read_(now) {
  gpu_indices_.assign(spec.execution().gpu_indices().begin(), spec.execution().gpu_indices().end());
  if (!gpu_indices_.empty()) {
    device_kind_ = "gpu";
    devices_ = static_cast<int>(gpu_indices_.size());
    StartGpus(gpus);
  } else {
    device_kind_ = "cpu";
    devices_ = CpuSlotsOf(spec);
    rapl_share_ = std::min(1.0, static_cast<double>(devices_) / std::max(node_cpu_slots, 1));
    StartRapl(options_.powercap_root);
  }
}

void EnergyMeter::FallBack(std::string reason) {
  source_ = "model";
  fallback_reason_ = std::move(reason);
  rapl_.clear();
  gpu_start_mj_.clear();
  gpu_power_sampling_ = false;
}

void EnergyMeter::StartGpus(GpuEnergySource* gpus) {
  if (gpus == nullptr) return FallBack("NVML is not available");
  gpus_ = gpus;
  source_ = "nvml";
  for (int gpu_index : gpu_indices_) {
    absl::StatusOr<uint64_t> total = gpus_->TotalEnergyMj(gpu_index);
    if (!total.ok()) {
      gpu_start_mj_.clear();
      break;
    }
    gpu_start_mj_.push_back(*total);
  }
  if (!gpu_start_mj_.empty()) return;
  // A GPU without an energy counter: integrate the power draw of them all instead.
  gpu_power_sampling_ = true;
  for (int gpu_index : gpu_indices_) {
    absl::StatusOr<uint32_t> power = gpus_->PowerMw(gpu_index);
    if (!power.ok()) {
      return FallBack(absl::StrCat("NVML GPU ", gpu_index, ": ", power.status().message()));
    }
    last_power_w_ += *power / 1e3;
  }
}

void EnergyMeter::StartRapl(const std::string& powercap_root) {
  if (powercap_root.empty()) return FallBack("RAPL is off (no powercap root)");
  std::error_code error;
  std::vector<fs::path> zones;
  for (const fs::directory_entry& entry : fs::directory_iterator(powercap_root, error)) {
    if (!IsPackageZoneName(entry.path().filename().string())) continue;
    // psys and other non-package top-level zones say so in their name.
    absl::StatusOr<std::string> name = ReadSmallFile((entry.path() / "name").string());
    if (name.ok() && !absl::StartsWith(*name, "package")) continue;
    zones.push_back(entry.path());
  }
  if (error) return FallBack(absl::StrCat("RAPL: ", powercap_root, ": ", error.message()));
  if (zones.empty()) {
    return FallBack(absl::StrCat("RAPL: no package zone under ", powercap_root));
  }
  std::sort(zones.begin(), zones.end());
  for (const fs::path& zone : zones) {
    RaplDomain domain;
    domain.energy_path = (zone / "energy_uj").string();
    absl::StatusOr<uint64_t> max_range = ReadCounter((zone / "max_energy_range_uj").string());
    absl::StatusOr<uint64_t> energy = ReadCounter(domain.energy_path);
    for (const absl::Status& status : {max_range.status(), energy.status()}) {
      if (!status.ok()) return FallBack(absl::StrCat("RAPL: ", status.message()));
    }
    domain.max_range_uj = *max_range;
    domain.last_uj = *energy;
    rapl_.push_back(std::move(domain));
  }
  source_ = "rapl";
}

void EnergyMeter::Sample(absl::Time now) {
  if (now - last_read_ >= options_.sample_interval) Read(now);
}

void EnergyMeter::Read(absl::Time now) {
  const double dt_s = absl::ToDoubleSeconds(now - last_read_);
  last_read_ = now;
  for (RaplDomain& domain : rapl_) {
    absl::StatusOr<uint64_t> energy = ReadCounter(domain.energy_path);
    if (!energy.ok()) return FallBack(absl::StrCat("RAPL: ", energy.status().message()));
    measured_j_ += CounterDelta(domain.last_uj, *energy, domain.max_range_uj) / 1e6;
    domain.last_uj = *energy;
  }
  if (gpu_power_sampling_) {
    double power_w = 0;
    for (int gpu_index : gpu_indices_) {
      absl::StatusOr<uint32_t> power = gpus_->PowerMw(gpu_index);
      if (!power.ok()) {
        return FallBack(absl::StrCat("NVML GPU ", gpu_index, ": ", power.status().message()));
      }
      power_w += *power / 1e3;
    }
    measured_j_ += (last_power_w_ + power_w) / 2 * dt_s;
    last_power_w_ = power_w;
  }
}

v1::EnergyReport EnergyMeter::Finish(absl::Time now) {
  Read(now);
  double energy_j = 0;
  if (!gpu_start_mj_.empty()) {
    for (size_t gpu_idx = 0; gpu_idx < gpu_indices_.size(); ++gpu_idx) {
      absl::StatusOr<uint64_t> total = gpus_->TotalEnergyMj(gpu_indices_[gpu_idx]);
      if (!total.ok()) {
        FallBack(absl::StrCat("NVML GPU ", gpu_indices_[gpu_idx], ": ", total.status().message()));
        break;
      }
      // The counter only grows while the driver stays loaded; a reload restarts it.
      energy_j += (*total >= gpu_start_mj_[gpu_idx] ? *total - gpu_start_mj_[gpu_idx] : 0) / 1e3;
    }
  }
  const double wall_s = std::max(0.0, absl::ToDoubleSeconds(now - start_));
  if (!rapl_.empty()) energy_j = measured_j_ * rapl_share_;
  if (gpu_power_sampling_) energy_j = measured_j_;
  if (source_ == "model") {
    const double watts = device_kind_ == "gpu" ? options_.gpu_watts : options_.cpu_slot_watts;
    energy_j = devices_ * watts * wall_s;
  }
  v1::EnergyReport report;
  report.set_energy_j(energy_j);
  report.set_source(source_);
  report.set_device_kind(device_kind_);
  report.set_devices(devices_);
  report.set_wall_s(wall_s);
  report.set_device_seconds(devices_ * wall_s);
  return report;
}

}  // namespace scalelab::worker
