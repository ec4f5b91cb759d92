// What the store hands the scheduler's placement (scheduler/placement.h) and what it takes back:
// the stored facts a decision round needs, and the grants it decided. Plain values; the store
// neither knows nor applies the policy, and the scheduler converts these into its resource model
// (scheduler/store_placement_state.h).
#ifndef SCALELAB_SERVICES_STORE_PLACEMENT_SNAPSHOT_H_
#define SCALELAB_SERVICES_STORE_PLACEMENT_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/worker.pb.h"

namespace scalelab::services {

// What one ADMITTED run was admitted with, or one LEASED or RUNNING attempt was granted.
struct HeldResources {
  int64_t run_id = 0;
  std::vector<int> gpu_indices;  // node GPU indices, ascending
  int cpu_slots = 0;             // attempts leased before placement count as 1
  int64_t project_id = 0;        // of the run's sweep
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
  int64_t project_id = 0;
  std::string priority = "normal";  // sweeps.priority: low | normal | high | critical
  v1::ResourceSpec resources;
  // False while config.init.from_run names a run that has no 'final' artifact yet: the run must
  // not be leased until it has (CommitLeases refuses it too).
  bool init_ready = true;
  // Workers where an infrastructure failure of this run happened: placed elsewhere while any
  // other worker of the snapshot could take it (scheduler/store_placement_state.cc).
  std::vector<int64_t> avoid_workers;
};

// A project's admission policy (migration 0007).
struct StoredProject {
  int64_t project_id = 0;
  std::string name;
  int gpu_quota = 0;    // 0 = no quota
  double weight = 1.0;  // > 0
};

// One read of the cluster, from a single database snapshot (REPEATABLE READ).
struct PlacementSnapshot {
  std::vector<StoredWorker> workers;  // eligible (ALIVE, and QUARANTINED ones) workers, by id
  // Eligible PENDING runs (past their retry backoff) in queue order (sweep id, run index): with a
  // window, only the first `max_pending_per_queue` of each (project, priority class) queue.
  std::vector<StoredPendingRun> pending;
  std::vector<StoredProject> projects;  // every project, by id
};

// One admission decision of the scheduling cycle: `run_id` goes to `worker_id` on these
// resources; for a gang, one per rank (rank 0 first, all ranks of a run together).
struct AdmissionGrant {
  int64_t run_id = 0;
  int64_t worker_id = 0;
  std::vector<int> gpu_indices;  // node GPU indices of that worker; empty for a CPU run
  int cpu_slots = 1;             // >= 0
  int rank = 0;                  // 0..ranks-1 of a gang; 0 for a run of one rank
};

// Where a gang's ranks meet: rank 0's trainer listens (a c10d TCPStore) on
// <rank 0's worker address>:<base + lease token % count>, a port every rank derives from the
// attempt's lease token alone. Ports below Linux's ephemeral range (32768-60999) by default, so
// no outgoing connection holds one. A port already taken makes rank 0 fail to listen; the retry
// gets a new token, so a new port.
struct RendezvousPorts {
  int base = 29400;  // 1..65535
  int count = 1000;  // >= 1; base + count - 1 <= 65535
};

// One run the scheduler decided to lease to the worker, on these resources.
struct LeaseGrant {
  int64_t run_id = 0;
  std::vector<int> gpu_indices;  // node GPU indices of that worker; empty for a CPU run
  int cpu_slots = 1;             // >= 0
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_PLACEMENT_SNAPSHOT_H_
