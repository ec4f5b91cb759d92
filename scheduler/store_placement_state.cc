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
  snapshot.workers.reserve(stored.workers.size());
  for (const services::StoredWorker& stored_worker : stored.workers) {
    WorkerState worker =
        WorkerStateFromRegistration(stored_worker.worker_id, stored_worker.inventory);
    for (const services::HeldResources& held : stored_worker.held) {
      if (absl::Status marked = MarkHeld(worker, held.gpu_indices, held.cpu_slots); !marked.ok()) {
        MarkHeldAsFarAsPossible(worker, held, marked);
      }
    }
    snapshot.workers.push_back(std::move(worker));
  }
  int64_t position = 0;
  for (const services::StoredPendingRun& run : stored.pending) {
    if (!run.init_ready) continue;  // waits for init.from_run's final weights
    snapshot.pending.push_back(
        RunRequestFromSpec(run.run_id, run.sweep_id, position++, run.resources));
  }
  return snapshot;
}

absl::StatusOr<ClusterSnapshot> StorePlacementState::Snapshot(int64_t requesting_worker) {
  absl::StatusOr<services::PlacementSnapshot> stored = store_->ReadPlacementSnapshot();
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
