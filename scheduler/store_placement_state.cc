#include "scheduler/store_placement_state.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/resources.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {
namespace {

// MarkHeld refused: the stored holds and the inventory disagree (a worker that re-registered
// with fewer slots, a grant recorded by hand). Whatever can be marked is, so the worker is never
// offered more than it has.
void MarkHeldAsFarAsPossible(WorkerState& worker, const services::HeldResources& held,
                             const absl::Status& refusal) {
  spdlog::warn("placement snapshot: run {} on worker {}: {}", held.run_id, worker.worker_id,
               std::string(refusal.message()));
  worker.cpu_slots_free = std::max(0, worker.cpu_slots_free - held.cpu_slots);
  for (Gpu& gpu : worker.gpus) {
    if (std::find(held.gpu_indices.begin(), held.gpu_indices.end(), gpu.index) !=
        held.gpu_indices.end()) {
      gpu.free = false;
    }
  }
}

}  // namespace

ClusterSnapshot ToClusterSnapshot(const services::PlacementSnapshot& stored) {
  ClusterSnapshot snapshot;
  for (const services::StoredProject& project : stored.projects) {
    ProjectState& state = snapshot.projects[project.project_id];
    state.name = project.name;
    state.gpu_quota = project.gpu_quota;
    state.weight = project.weight;
  }
  snapshot.workers.reserve(stored.workers.size());
  for (const services::StoredWorker& stored_worker : stored.workers) {
    WorkerState worker =
        WorkerStateFromRegistration(stored_worker.worker_id, stored_worker.inventory);
    for (const services::HeldResources& held : stored_worker.held) {
      ProjectState& project = snapshot.projects[held.project_id];
      project.gpus_in_use += static_cast<int>(held.gpu_indices.size());
      project.cpu_slots_in_use += held.cpu_slots;
      if (absl::Status marked = MarkHeld(worker, held.gpu_indices, held.cpu_slots); !marked.ok()) {
        MarkHeldAsFarAsPossible(worker, held, marked);
      }
    }
    snapshot.workers.push_back(std::move(worker));
  }
  int64_t position = 0;
  for (const services::StoredPendingRun& run : stored.pending) {
    if (!run.init_ready) continue;  // waits for init.from_run's final weights
    RunRequest request = RunRequestFromSpec(run.run_id, run.sweep_id, position++, run.resources);
    request.project_id = run.project_id;
    request.priority =
        static_cast<int>(PriorityClassFromName(run.priority).value_or(PriorityClass::kNormal));
    snapshot.pending.push_back(std::move(request));
  }
  return snapshot;
}

absl::StatusOr<ClusterSnapshot> StorePlacementState::Snapshot(int64_t requesting_worker) {
  absl::StatusOr<services::PlacementSnapshot> stored =
      store_->ReadPlacementSnapshot(max_pending_per_queue_);
  if (!stored.ok()) return stored.status();
  if (requesting_worker != 0 && std::none_of(stored->workers.begin(), stored->workers.end(),
                                             [&](const services::StoredWorker& w) {
                                               return w.worker_id == requesting_worker;
                                             })) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", requesting_worker, " is not registered or was declared lost; register again"));
  }
  return ToClusterSnapshot(*stored);
}

}  // namespace scalelab::scheduler
