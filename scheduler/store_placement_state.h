// PlacementState over the results store: each Snapshot reads ALIVE workers, what their LEASED and
// RUNNING attempts hold and the PENDING runs (Store::ReadPlacementSnapshot, one database
// snapshot) and converts them into the resource model of scheduler/resources.h.
#ifndef SCALELAB_SCHEDULER_STORE_PLACEMENT_STATE_H_
#define SCALELAB_SCHEDULER_STORE_PLACEMENT_STATE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "scheduler/placement.h"
#include "scheduler/placement_state.h"
#include "services/store/placement_snapshot.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

// Thread-safe (the store is). The store is not owned and must outlive this object.
class StorePlacementState final : public PlacementState {
 public:
  // `max_pending_per_queue` > 0: each snapshot holds only the first that many pending runs of
  // each (project, priority class) queue (Store::ReadPlacementSnapshot); 0 = all of them.
  explicit StorePlacementState(services::Store* store, int max_pending_per_queue = 0)
      : store_(store), max_pending_per_queue_(max_pending_per_queue) {}

  // FailedPrecondition when `requesting_worker` (!= 0) is not an ALIVE worker; the store's
  // errors (Unavailable, Internal) as they come.
  absl::StatusOr<ClusterSnapshot> Snapshot(int64_t requesting_worker) override;

 private:
  services::Store* store_;
  int max_pending_per_queue_;
};

// The conversion Snapshot applies, pure. Workers: their registration (WorkerStateFromRegistration)
// minus what their attempts hold (MarkHeld); a hold the inventory cannot cover (a GPU it does not
// list or already held, more slots than free) marks what it can and is logged, never an error, so
// one odd row cannot stop all leasing. Pending runs: those whose init is ready, in the store's
// order, with position = their rank in that order.
//
// Failures: quarantined workers are left out (a quarantined requester is kept, with an empty
// pending queue: it gets no leases), and each run carries the workers it avoids
// (runs.avoid_workers; placement's FitsNow skips them) unless every non-quarantined worker of the
// snapshot is one the run avoids: a preference, so a run on a one-worker cluster still retries
// there.
ClusterSnapshot ToClusterSnapshot(const services::PlacementSnapshot& stored,
                                  int64_t requesting_worker = 0);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_STORE_PLACEMENT_STATE_H_
