// The lease path behind WorkerService.LeaseRuns: read a snapshot of the cluster, let the
// placement policy decide what the asking worker gets, and have the store persist exactly that.
//
//   PlacementState::Snapshot -> PlaceOnWorker (scheduler/placement.h) -> Store::CommitLeases
//
// The store re-checks every decision in its transaction (FOR UPDATE SKIP LOCKED, GPUs and slots
// still free), so concurrent calls and several schedulers never grant a run or a GPU twice; a
// decision that fails the re-check is dropped from this answer and the worker asks again.
#ifndef SCALELAB_SCHEDULER_LEASING_H_
#define SCALELAB_SCHEDULER_LEASING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scalelab/v1/worker.pb.h"
#include "scheduler/placement.h"
#include "scheduler/placement_state.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

// Leases to `worker_id` what this round's placement gives it, never more than `free_slots` runs
// (the worker's own count of free slots is a cap on its CPU slots in the snapshot). Each lease
// carries the granted GPUs in spec.execution.gpu_indices. Empty when free_slots <= 0 or nothing
// fits. FailedPrecondition when the worker is unknown or LOST (it must register again);
// Unavailable when the store cannot be reached. Thread-safe when `state` and `store` are.
absl::StatusOr<std::vector<v1::Lease>> GrantLeases(PlacementState& state, services::Store& store,
                                                   int64_t worker_id, int free_slots,
                                                   absl::Time now, absl::Duration lease_ttl,
                                                   const PlacementOptions& options);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_LEASING_H_
