// What the store hands the scheduler's placement (scheduler/placement.h) and what it takes back:
// the stored facts a decision round needs, and the grants it decided. Plain values; the store
// neither knows nor applies the policy, and the scheduler converts these into its resource model
// (scheduler/store_placement_state.h).
#ifndef SCALELAB_SERVICES_STORE_PLACEMENT_SNAPSHOT_H_
#define SCALELAB_SERVICES_STORE_PLACEMENT_SNAPSHOT_H_

#include <cstdint>
#include <vector>

#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/worker.pb.h"

namespace scalelab::services {

// What one LEASED or RUNNING attempt was granted when it was leased.
struct HeldResources {
  int64_t run_id = 0;
  std::vector<int> gpu_indices;  // node GPU indices, ascending
  int cpu_slots = 0;             // attempts leased before placement count as 1
};

// One ALIVE or QUARANTINED worker: its inventory as it registered and what its current attempts
// hold. A quarantined worker keeps its running attempts but gets no new lease.
struct StoredWorker {
  int64_t worker_id = 0;
  v1::RegisterRequest inventory;    // cpu_slots, gpus (index, name, memory), labels
  std::vector<HeldResources> held;  // in run id order
  bool quarantined = false;
};

// One PENDING run, with the parts of its config placement looks at.
struct StoredPendingRun {
  int64_t run_id = 0;
  int64_t sweep_id = 0;
  int32_t run_index = 0;
  v1::ResourceSpec resources;
  // False while config.init.from_run names a run that has no 'final' artifact yet: the run must
  // not be leased until it has (CommitLeases refuses it too).
  bool init_ready = true;
  // Workers where an infrastructure failure of this run happened: placed elsewhere while any
  // other worker of the snapshot could take it (scheduler/store_placement_state.cc).
  std::vector<int64_t> avoid_workers;
};

// One read of the cluster, from a single database snapshot (REPEATABLE READ).
struct PlacementSnapshot {
  std::vector<StoredWorker> workers;      // ALIVE and QUARANTINED workers, by id
  std::vector<StoredPendingRun> pending;  // PENDING runs past their backoff, in queue order
};

// One run the scheduler decided to lease to the worker, on these resources.
struct LeaseGrant {
  int64_t run_id = 0;
  std::vector<int> gpu_indices;  // node GPU indices of that worker; empty for a CPU run
  int cpu_slots = 1;             // >= 0
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_PLACEMENT_SNAPSHOT_H_
