#include "scheduler/leasing.h"

#include <algorithm>
#include <utility>

#include "spdlog/spdlog.h"

namespace scalelab::scheduler {

absl::StatusOr<std::vector<v1::Lease>> GrantLeases(PlacementState& state, services::Store& store,
                                                   int64_t worker_id, int free_slots,
                                                   absl::Time now, absl::Duration lease_ttl,
                                                   const PlacementOptions& options) {
  if (free_slots <= 0) return std::vector<v1::Lease>();
  absl::StatusOr<ClusterSnapshot> snapshot = state.Snapshot(worker_id);
  if (!snapshot.ok()) return snapshot.status();
  // Both views lag: the store still holds a run the worker just finished, and the worker still
  // runs an attempt whose lease the store already expired. The smaller count is the safe one.
  for (WorkerState& worker : snapshot->workers) {
    if (worker.worker_id != worker_id) continue;
    worker.cpu_slots_free = std::min(worker.cpu_slots_free, free_slots);
  }
  absl::StatusOr<PlacementResult> placed = PlaceOnWorker(*snapshot, worker_id, options);
  if (!placed.ok()) return placed.status();

  std::vector<services::LeaseGrant> grants;
  for (PlacementDecision& decision : placed->placed) {
    // Every decision takes at least one slot, so the cap above already bounds this; the check
    // keeps the promise independent of how the policy counts slots.
    if (static_cast<int>(grants.size()) >= free_slots) break;
    services::LeaseGrant grant;
    grant.run_id = decision.run_id;
    grant.gpu_indices = std::move(decision.gpu_indices);
    grant.cpu_slots = decision.cpu_slots;
    grants.push_back(std::move(grant));
  }
  if (grants.empty()) return std::vector<v1::Lease>();
  absl::StatusOr<std::vector<v1::Lease>> leases =
      store.CommitLeases(worker_id, grants, now, lease_ttl);
  if (leases.ok() && leases->size() < grants.size()) {
    spdlog::debug("worker {}: {} of {} placement decisions were taken meanwhile", worker_id,
                  grants.size() - leases->size(), grants.size());
  }
  return leases;
}

}  // namespace scalelab::scheduler
