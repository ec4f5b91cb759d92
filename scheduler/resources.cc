#include "scheduler/resources.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace scalelab::scheduler {

int WorkerState::FreeGpuCount() const {
  return static_cast<int>(
      std::count_if(gpus.begin(), gpus.end(), [](const Gpu& gpu) { return gpu.free; }));
}

absl::Status WorkerState::Validate() const {
  auto invalid = [&](absl::string_view field, int64_t value, absl::string_view expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker ", worker_id, ": ", field, ": expected ", expected, ", got ", value));
  };
  if (worker_id <= 0) return invalid("worker_id", worker_id, "> 0");
  if (cpu_slots_total < 0) return invalid("cpu_slots_total", cpu_slots_total, ">= 0");
  if (cpu_slots_free < 0 || cpu_slots_free > cpu_slots_total) {
    return invalid("cpu_slots_free", cpu_slots_free,
                   absl::StrCat("between 0 and cpu_slots_total (", cpu_slots_total, ")"));
  }
  std::set<int> indices;
  for (const Gpu& gpu : gpus) {
    if (gpu.index < 0) return invalid("gpus.index", gpu.index, ">= 0");
    if (!indices.insert(gpu.index).second) {
      return invalid("gpus.index", gpu.index, "each index once");
    }
    if (gpu.memory_bytes < 0) return invalid("gpus.memory_bytes", gpu.memory_bytes, ">= 0");
  }
  return absl::OkStatus();
}

absl::Status RunRequest::Validate() const {
  auto invalid = [&](absl::string_view field, int64_t value, absl::string_view expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("run ", run_id, ": ", field, ": expected ", expected, ", got ", value));
  };
  if (gpus < 0) return invalid("resources.gpus", gpus, ">= 0");
  if (cpus < 0) return invalid("resources.cpus", cpus, ">= 0");
  if (ranks < 1) return invalid("resources.ranks", ranks, ">= 1");
  if (ranks_per_node < 0) return invalid("resources.ranks_per_node", ranks_per_node, ">= 0");
  if (min_gpu_memory_bytes.has_value() && *min_gpu_memory_bytes < 0) {
    return invalid("min_gpu_memory_bytes", *min_gpu_memory_bytes, ">= 0");
  }
  return absl::OkStatus();
}

ResourceDemand DemandOf(const RunRequest& run) {
  ResourceDemand demand;
  if (run.gpus > 0) {
    demand.cpu_slots = 1;
    demand.gpus = run.gpus;
  } else {
    demand.cpu_slots = std::max(run.cpus, 1);
  }
  return demand;
}

bool GpuMatches(const Gpu& gpu, const RunRequest& run) {
  if (run.min_gpu_memory_bytes.has_value() && gpu.memory_bytes < *run.min_gpu_memory_bytes) {
    return false;
  }
  // Debian's abseil predates StrContainsIgnoreCase.
  if (run.gpu_model.has_value() &&
      !absl::StrContains(absl::AsciiStrToLower(gpu.model), absl::AsciiStrToLower(*run.gpu_model))) {
    return false;
  }
  return true;
}

RunRequest RunRequestFromSpec(int64_t run_id, int64_t sweep_id, int64_t position,
                              const v1::ResourceSpec& spec) {
  RunRequest run;
  run.run_id = run_id;
  run.sweep_id = sweep_id;
  run.position = position;
  run.cpus = spec.cpus();
  run.gpus = spec.gpus();
  run.ranks = std::max(spec.ranks(), 1);
  run.ranks_per_node = spec.ranks_per_node();
  if (!spec.gpu_model().empty()) run.gpu_model = spec.gpu_model();
  if (spec.gpu_memory_gb() > 0) {
    run.min_gpu_memory_bytes = static_cast<int64_t>(spec.gpu_memory_gb() * (int64_t{1} << 30));
  }
  run.node_labels.insert(spec.node_labels().begin(), spec.node_labels().end());
  return run;
}

std::optional<PriorityClass> PriorityClassFromName(absl::string_view name) {
  if (name == "low") return PriorityClass::kLow;
  if (name == "normal") return PriorityClass::kNormal;
  if (name == "high") return PriorityClass::kHigh;
  if (name == "critical") return PriorityClass::kCritical;
  return std::nullopt;
}

const char* PriorityClassName(PriorityClass priority) {
  switch (priority) {
    case PriorityClass::kLow:
      return "low";
    case PriorityClass::kNormal:
      return "normal";
    case PriorityClass::kHigh:
      return "high";
    case PriorityClass::kCritical:
      return "critical";
  }
  return "normal";
}

bool LabelsMatch(const WorkerState& worker, const RunRequest& run) {
  for (const auto& [key, value] : run.node_labels) {
    auto it = worker.labels.find(key);
    if (it == worker.labels.end() || it->second != value) return false;
  }
  return true;
}

WorkerState WorkerStateFromRegistration(int64_t worker_id, const v1::RegisterRequest& request) {
  WorkerState worker;
  worker.worker_id = worker_id;
  worker.name = request.name();
  worker.cpu_slots_total = request.cpu_slots();
  worker.cpu_slots_free = request.cpu_slots();
  for (const v1::GpuInfo& info : request.gpus()) {
    Gpu gpu;
    gpu.index = info.index();
    gpu.model = info.name();
    gpu.memory_bytes = info.memory_bytes();
    worker.gpus.push_back(std::move(gpu));
  }
  worker.labels.insert(request.labels().begin(), request.labels().end());
  return worker;
}

absl::Status MarkHeld(WorkerState& worker, const std::vector<int>& gpu_indices, int cpu_slots) {
  if (cpu_slots < 0 || cpu_slots > worker.cpu_slots_free) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", worker.worker_id, " has ",
                                                      worker.cpu_slots_free, " free CPU slots, ",
                                                      cpu_slots, " asked"));
  }
  // Checked in full before anything changes, so a refusal leaves the worker as it was.
  std::vector<Gpu*> taken;
  for (int index : gpu_indices) {
    auto it = std::find_if(worker.gpus.begin(), worker.gpus.end(),
                           [index](const Gpu& gpu) { return gpu.index == index; });
    if (it == worker.gpus.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", worker.worker_id, " has no GPU ", index));
    }
    if (!it->free || std::find(taken.begin(), taken.end(), &*it) != taken.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("GPU ", index, " of worker ", worker.worker_id, " is already held"));
    }
    taken.push_back(&*it);
  }
  for (Gpu* gpu : taken) gpu->free = false;
  worker.cpu_slots_free -= cpu_slots;
  return absl::OkStatus();
}

std::string FormatBytes(int64_t bytes) {
  constexpr int64_t kMiB = int64_t{1} << 20;
  constexpr int64_t kGiB = int64_t{1} << 30;
  if (bytes >= kGiB) {
    if (bytes % kGiB == 0) return absl::StrCat(bytes / kGiB, " GiB");
    return absl::StrFormat("%.1f GiB", static_cast<double>(bytes) / kGiB);
  }
  if (bytes >= kMiB && bytes % kMiB == 0) return absl::StrCat(bytes / kMiB, " MiB");
  return absl::StrCat(bytes, " bytes");
}

}  // namespace scalelab::scheduler
