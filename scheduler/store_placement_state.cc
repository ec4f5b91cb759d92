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

ClusterSnapshot ToClusterSnapshot(const services::PlacementSnapshot& stored,
                                  int64_t requesting_worker) {
  ClusterSnapshot snapshot;
  for (const services::StoredProject& project : stored.projects) {
    ProjectState& state = snapshot.projects[project.project_id];
    state.name = project.name;
    state.gpu_quota = project.gpu_quota;
    state.weight = project.weight;
  }
  snapshot.workers.reserve(stored.workers.size());
  std::vector<int64_t> usable;  // non-quarantined workers, by id
  bool requester_quarantined = false;
  for (const services::StoredWorker& stored_worker : stored.workers) {
    if (stored_worker.quarantined) {
      // The requester stays in the snapshot (placement expects it) with nothing to place.
      if (stored_worker.worker_id != requesting_worker) continue;
      requester_quarantined = true;
    } else {
      usable.push_back(stored_worker.worker_id);
    }
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
  if (requester_quarantined) return snapshot;
  int64_t position = 0;
  for (const services::StoredPendingRun& run : stored.pending) {
    if (!run.init_ready) continue;  // waits for init.from_run's final weights
    RunRequest request = RunRequestFromSpec(run.run_id, run.sweep_id, position++, run.resources);
    request.project_id = run.project_id;
    request.priority =
        static_cast<int>(PriorityClassFromName(run.priority).value_or(PriorityClass::kNormal));
    if (!run.avoid_workers.empty()) {
      auto avoided = [&run](int64_t worker_id) {
        return std::find(run.avoid_workers.begin(), run.avoid_workers.end(), worker_id) !=
               run.avoid_workers.end();
      };
      // A preference: when every usable worker is one the run avoids, it may go anywhere.
      if (!std::all_of(usable.begin(), usable.end(), avoided)) {
        request.avoid_workers = run.avoid_workers;
      }
    }
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
  return ToClusterSnapshot(*stored, requesting_worker);
}

}  // namespace scalelab::scheduler
