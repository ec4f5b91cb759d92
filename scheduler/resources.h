// The scheduler's resource model: what a worker has free and what a pending run asks for, in the
// terms the placement policy (scheduler/placement.h) reasons about. Plain values, built by the
// store from its rows (or by tests by hand); nothing here talks to PostgreSQL or gRPC.
//
// Units: memory in bytes; CPU capacity in slots (one slot = room for one CPU run, as the worker's
// --cpu_slots flag counts them); GPUs as whole devices. Thread safety: plain structs and pure
// functions; share const values freely.
#ifndef SCALELAB_SCHEDULER_RESOURCES_H_
#define SCALELAB_SCHEDULER_RESOURCES_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/worker.pb.h"

namespace scalelab::scheduler {

// One GPU of a worker, as its inventory reported it at registration.
struct Gpu {
  int index = 0;             // the device index on its worker (CUDA_VISIBLE_DEVICES numbering)
  std::string model;         // e.g. "NVIDIA H200"; may be empty when the driver did not say
  int64_t memory_bytes = 0;  // 0 = unknown; an unknown size never satisfies a memory requirement
  bool free = true;          // false while a leased or running attempt holds it
};

// One ALIVE worker and what it has free right now.
struct WorkerState {
  int64_t worker_id = 0;  // > 0, the store's id
  std::string name;       // for messages only
  int cpu_slots_total = 0;
  int cpu_slots_free = 0;                     // 0 <= free <= total
  std::vector<Gpu> gpus;                      // distinct indices
  std::map<std::string, std::string> labels;  // RegisterRequest.labels; runs may require some

  int FreeGpuCount() const;
  // InvalidArgument naming the worker, the field and the value when the bookkeeping is
  // inconsistent (free > total, negative counts, a repeated GPU index, worker_id <= 0).
  absl::Status Validate() const;
};

// What one pending run asks for. Built from its v1::ResourceSpec (RunRequestFromSpec); the
// optional GPU requirements exist only here until the manifest grows them.
struct RunRequest {
  int64_t run_id = 0;
  int64_t sweep_id = 0;
  // The priority class (PriorityClass as an int): a higher class goes first.
  int priority = 0;
  // The project the run's sweep belongs to (fair share and quota are per project); 0 = none.
  int64_t project_id = 0;
  // Workers where this run failed for infrastructure reasons (runs.avoid_workers): it is placed
  // elsewhere. Empty when every usable worker is one of them (ToClusterSnapshot clears it).
  std::vector<int64_t> avoid_workers;
  // Queue position: lower = earlier. The store uses (sweep id, run index) order, i.e. the order
  // runs were submitted; any strictly increasing number in that order will do.
  int64_t position = 0;
  int cpus = 0;  // CPU slots for a CPU run; 0 = 1. Ignored when gpus > 0.
  int gpus = 0;  // whole GPUs; 0 = a CPU run
  // Data-parallel ranks (ResourceSpec.ranks, 0 read as 1). A gang (> 1) is placed all at once
  // or not at all; `gpus` and `cpus` are per rank.
  int ranks = 1;
  // Most ranks of this run on one worker (ResourceSpec.ranks_per_node); 0 = any.
  int ranks_per_node = 0;
  // Every GPU granted must have at least this much memory (bytes).
  std::optional<int64_t> min_gpu_memory_bytes;
  // Every GPU granted must have a model name containing this, ignoring case ("h200" matches
  // "NVIDIA H200"). An empty string matches any GPU.
  std::optional<std::string> gpu_model;
  // Worker labels the run requires, exact match (ResourceSpec.node_labels).
  std::map<std::string, std::string> node_labels;

  // InvalidArgument naming the run, the field and the value (negative counts, ranks < 1, a
  // negative memory requirement).
  absl::Status Validate() const;
};

// True when `worker_id` is one of the workers the run must avoid (RunRequest.avoid_workers).
inline bool AvoidsWorker(const RunRequest& run, int64_t worker_id) {
  return std::find(run.avoid_workers.begin(), run.avoid_workers.end(), worker_id) !=
         run.avoid_workers.end();
}

// Priority classes of SweepSpec.priority, lowest first.
enum class PriorityClass { kLow = 0, kNormal = 1, kHigh = 2, kCritical = 3 };
inline constexpr int kPriorityClassCount = 4;
// "low", "normal", "high", "critical" -> the class; nullopt for anything else ("" included).
std::optional<PriorityClass> PriorityClassFromName(absl::string_view name);
const char* PriorityClassName(PriorityClass priority);

// True when the worker carries every label the run requires, with the same value.
bool LabelsMatch(const WorkerState& worker, const RunRequest& run);

// The resources one rank of a run holds while it runs (a run of one rank: the run). A CPU run
// (gpus == 0) holds max(cpus, 1) CPU slots; a GPU run holds its GPUs plus one CPU slot (the
// trainer process driving them). A gang holds this once per rank.
struct ResourceDemand {
  int cpu_slots = 0;
  int gpus = 0;
};
ResourceDemand DemandOf(const RunRequest& run);

// True when `gpu` satisfies the run's model and memory requirements (free or not).
bool GpuMatches(const Gpu& gpu, const RunRequest& run);

// A run request from the stored ResourceSpec of its config (GPUs, CPUs, ranks, ranks_per_node,
// gpu_model, gpu_memory_gb, node_labels). Priority and project are the caller's. Does not validate.
RunRequest RunRequestFromSpec(int64_t run_id, int64_t sweep_id, int64_t position,
                              const v1::ResourceSpec& spec);

// A worker as it registered, with every slot and GPU free. The store then marks what the
// worker's current attempts hold (MarkHeld).
WorkerState WorkerStateFromRegistration(int64_t worker_id, const v1::RegisterRequest& request);

// Marks the resources of a run already placed on `worker` as held: `cpu_slots` slots and the
// GPUs with these indices. FailedPrecondition when a GPU is unknown or already held, or when
// fewer than `cpu_slots` slots are free; `worker` is unchanged then.
absl::Status MarkHeld(WorkerState& worker, const std::vector<int>& gpu_indices, int cpu_slots);

// "80 GiB", "1.5 GiB", "512 MiB": memory for messages.
std::string FormatBytes(int64_t bytes);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_RESOURCES_H_
