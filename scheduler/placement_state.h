// The seam between the placement policy and wherever the cluster's state lives.
// StorePlacementState (scheduler/store_placement_state.h) implements it over the results store;
// tests use the in-memory fake in tests/scheduler/in_memory_placement_state.h.
#ifndef SCALELAB_SCHEDULER_PLACEMENT_STATE_H_
#define SCALELAB_SCHEDULER_PLACEMENT_STATE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "scheduler/placement.h"

namespace scalelab::scheduler {

// Implementations must be thread-safe: LeaseRuns calls arrive concurrently.
class PlacementState {
 public:
  virtual ~PlacementState() = default;

  // One consistent view for a decision round: every ALIVE worker with what it has free (its
  // inventory minus what its LEASED and RUNNING attempts hold) and the PENDING runs in queue
  // order. The view may be stale by the time decisions are persisted; the writer re-checks.
  // `requesting_worker` is the worker calling LeaseRuns (0 = none, e.g. `scalelab queue`):
  // FailedPrecondition when it is unknown or LOST, so it registers again. Unavailable when the
  // state cannot be read (retry the call).
  virtual absl::StatusOr<ClusterSnapshot> Snapshot(int64_t requesting_worker) = 0;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_PLACEMENT_STATE_H_
