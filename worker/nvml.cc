// OpenNvml (worker/energy.h): NVML through dlopen, so the worker builds and runs on machines
// without the NVIDIA driver. Only the calls the energy meter needs are resolved; their
// signatures are NVML's (nvml.h), with nvmlDevice_t as an opaque pointer and nvmlReturn_t as int.
#include <dlfcn.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/energy.h"

namespace scalelab::worker {
namespace {

struct NvmlDeviceOpaque;
using NvmlDevice = NvmlDeviceOpaque*;
using NvmlReturn = int;
constexpr NvmlReturn kNvmlSuccess = 0;
constexpr NvmlReturn kNvmlErrorNotSupported = 3;

// NVML is thread-safe, so this is too.
class Nvml final : public GpuEnergySource {
 public:
  static absl::StatusOr<std::unique_ptr<GpuEnergySource>> Open() {
    void* library = ::dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      return absl::UnavailableError(absl::StrCat("NVML: ", ::dlerror()));
    }
    auto nvml = std::unique_ptr<Nvml>(new Nvml(library));
    if (!nvml->Resolve()) {
      return absl::UnavailableError("NVML: libnvidia-ml.so.1 lacks the energy calls");
    }
    if (NvmlReturn result = nvml->init_(); result != kNvmlSuccess) {
      return absl::UnavailableError(absl::StrCat("NVML: nvmlInit_v2: ", nvml->Error(result)));
    }
    nvml->initialized_ = true;
    return std::unique_ptr<GpuEnergySource>(std::move(nvml));
  }

  ~Nvml() override {
    if (initialized_) shutdown_();
    ::dlclose(library_);
  }

  absl::StatusOr<uint64_t> TotalEnergyMj(int gpu_index) override {
    absl::StatusOr<NvmlDevice> device = Device(gpu_index);
    if (!device.ok()) return device.status();
    unsigned long long energy_mj = 0;  // NOLINT(runtime/int): NVML's type
    if (NvmlReturn result = total_energy_(*device, &energy_mj); result != kNvmlSuccess) {
      return Failure("nvmlDeviceGetTotalEnergyConsumption", gpu_index, result);
    }
    return static_cast<uint64_t>(energy_mj);
  }

  absl::StatusOr<uint32_t> PowerMw(int gpu_index) override {
    absl::StatusOr<NvmlDevice> device = Device(gpu_index);
    if (!device.ok()) return device.status();
    unsigned int power_mw = 0;
    if (NvmlReturn result = power_usage_(*device, &power_mw); result != kNvmlSuccess) {
      return Failure("nvmlDeviceGetPowerUsage", gpu_index, result);
    }
    return power_mw;
  }

 private:
  explicit Nvml(void* library) : library_(library) {}

  template <typename Fn>
  bool Bind(Fn*& fn, const char* name) {
    fn = reinterpret_cast<Fn*>(::dlsym(library_, name));
    return fn != nullptr;
  }
  bool Resolve() {
    return Bind(init_, "nvmlInit_v2") && Bind(shutdown_, "nvmlShutdown") &&
           Bind(error_string_, "nvmlErrorString") &&
           Bind(handle_by_index_, "nvmlDeviceGetHandleByIndex_v2") &&
           Bind(total_energy_, "nvmlDeviceGetTotalEnergyConsumption") &&
           Bind(power_usage_, "nvmlDeviceGetPowerUsage");
  }

  std::string Error(NvmlReturn result) const {
    const char* text = error_string_(result);
    return text == nullptr ? absl::StrCat("error ", result) : text;
  }
  absl::Status Failure(const char* call, int gpu_index, NvmlReturn result) const {
    std::string message = absl::StrCat(call, "(GPU ", gpu_index, "): ", Error(result));
    if (result == kNvmlErrorNotSupported) return absl::UnimplementedError(message);
    return absl::UnavailableError(message);
  }
  absl::StatusOr<NvmlDevice> Device(int gpu_index) const {
    NvmlDevice device = nullptr;
    if (gpu_index < 0) return absl::InvalidArgumentError(absl::StrCat("GPU index ", gpu_index));
    if (NvmlReturn result = handle_by_index_(static_cast<unsigned int>(gpu_index), &device);
        result != kNvmlSuccess) {
      return Failure("nvmlDeviceGetHandleByIndex_v2", gpu_index, result);
    }
    return device;
  }

  void* library_;
  bool initialized_ = false;
  NvmlReturn (*init_)() = nullptr;
  NvmlReturn (*shutdown_)() = nullptr;
  const char* (*error_string_)(NvmlReturn) = nullptr;
  NvmlReturn (*handle_by_index_)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*total_energy_)(NvmlDevice, unsigned long long*) = nullptr;  // NOLINT(runtime/int)
  NvmlReturn (*power_usage_)(NvmlDevice, unsigned int*) = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GpuEnergySource>> OpenNvml() { return Nvml::Open(); }

}  // namespace scalelab::worker
