// Placement: which pending run goes to which worker, on which GPUs. Pure policy over a snapshot
// of the cluster (scheduler/resources.h); unit-tested without a database. The store persists
// decisions, it does not make them.
//
// How the lease path uses it (scheduler/leasing.h):
//   1. WorkerService::LeaseRuns(worker_id, free resources) calls
//      PlacementState::Snapshot(worker_id) (scheduler/placement_state.h). The store builds it
//      from ALIVE workers (their inventory minus what their LEASED/RUNNING attempts hold; for the
//      requesting worker, also no more than it reports free) and PENDING runs in queue order.
//   2. PlaceOnWorker(snapshot, worker_id, options) decides what this worker gets. The decision
//      is made over the whole cluster and filtered, so a worker gets exactly what a full round
//      would give it: a run best fitted elsewhere waits for that worker's own LeaseRuns call.
//   3. The store persists the decisions in one transaction: it locks the chosen runs with
//      SELECT ... FOR UPDATE SKIP LOCKED and re-checks that each is still PENDING and that the
//      granted GPUs and slots are still free (another scheduler or call may have leased in
//      between). A run that fails the re-check is dropped from this answer, not re-placed; the
//      worker asks again on its next poll. The granted GPU indices travel in the Lease and are
//      recorded with the attempt, which is how the next snapshot knows they are held.
//
// Policy (one round, Place):
//   - Order: priority class (critical, high, normal, low). Within a class, weighted fair share
//     between projects: the project with the smallest dominant share (max of its GPU and CPU
//     slot share of the cluster, divided by its weight) goes next, counting what it holds now
//     and what this round granted it; ties by queue position. Within a project, queue position,
//     then run id.
//   - Quota: a GPU run whose project would then hold more GPUs than its quota is not placed
//     (kQuota); later runs of the project that fit the quota still may be.
//   - Labels: a run is placed only on a worker carrying every label it requires.
//   - Fit: a run is placed only on a worker with enough FREE matching GPUs (model, memory) and
//     free CPU slots (DemandOf). No GPU and no slot is granted twice in one round.
//   - Best fit: among workers that fit, the one left with the fewest free GPUs after placement,
//     then the fewest free CPU slots, then a partly used worker before an idle one (every GPU
//     and slot free), then the lowest worker id. CPU runs so land on CPU-only workers first,
//     and small runs fill partly used nodes before touching an empty one, which stays whole for
//     a gang. GPUs on a worker are taken in index order.
//   - Gangs (ranks > 1; gpus and cpus are per rank) are placed all at once or not at all, one
//     decision per rank (rank 0 first). On one worker when one worker fits every rank now (best
//     fit, as above) and ranks_per_node allows it; otherwise across the fewest workers: while no
//     single worker fits the ranks still to place, the worker that fits the most of them takes
//     as many as it can (ties: fewest free GPUs left, partly used first, lowest id), then the
//     rest goes to the best fit for exactly that many. ranks_per_node N caps the ranks on one
//     worker. Ranks are numbered in the order the workers were chosen; each rank's GPUs are the
//     next `gpus` of its worker's lowest-indexed free matching GPUs. Avoided workers are avoided
//     only while the gang could still fit the idle cluster without them.
//   - No starvation (a reservation, as in EASY backfilling): when a run does not fit now but
//     would fit an empty worker, it holds that worker's free matching GPUs and CPU slots (up to
//     what it needs) for the rest of the round, so later, smaller runs cannot take them. The
//     worker chosen is the one closest to fitting (most free matching GPUs, then most free
//     slots, then lowest id). A gang holds on as many workers as it needs when idle, those that
//     fit the most of its ranks now first, each up to what its ranks there need. Held resources
//     only grow as runs there finish, and a run moves its hold only to a worker with strictly more
//     (or as many, with a lower id), so the best count never decreases and the run is placed once
//     enough runs finish. Only the first `max_reservations` blocked runs hold anything, so one
//     blocked sweep cannot idle the cluster. A run that no worker could hold even when empty holds
//     nothing (it never fits).
//   - A run that is not placed is reported with a reason (UnplacedRun) for `scalelab queue`.
//
// Thread safety: pure functions over const inputs; call from any thread.
#ifndef SCALELAB_SCHEDULER_PLACEMENT_H_
#define SCALELAB_SCHEDULER_PLACEMENT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/resources.h"

namespace scalelab::scheduler {

// A project's fair-share weight, GPU quota and what its runs hold now.
struct ProjectState {
  std::string name;     // for messages
  int gpu_quota = 0;    // most GPUs its runs may hold at once; 0 = no quota
  double weight = 1.0;  // fair-share weight, > 0 (<= 0 reads as 1)
  int gpus_in_use = 0;  // held by its ADMITTED, LEASED and RUNNING runs
  int cpu_slots_in_use = 0;
};

// The view one decision round works on.
struct ClusterSnapshot {
  std::vector<WorkerState> workers;  // ALIVE workers with their free resources; distinct ids
  std::vector<RunRequest> pending;   // PENDING runs, in queue order; distinct run ids
  // By project id. A run whose project is missing here counts as a project with no quota,
  // weight 1 and nothing in use.
  std::map<int64_t, ProjectState> projects;
};

// A project's dominant share: the larger of its share of the cluster's GPUs and of its CPU
// slots, divided by its weight. Fair share places the project with the smallest first.
double DominantShare(const ProjectState& project, int total_gpus, int total_cpu_slots);

struct PlacementOptions {
  // How many blocked runs (the earliest in queue order) may hold resources on a worker to avoid
  // starvation. 0 = none: plain backfill, where a big run can wait forever.
  int max_reservations = 1;

  absl::Status Validate() const;
};

// One run (or one rank of a gang) granted to one worker. A gang gets one decision per rank,
// consecutive in PlacementResult::placed, rank 0 first.
struct PlacementDecision {
  int64_t run_id = 0;
  int64_t worker_id = 0;
  std::vector<int> gpu_indices;  // Gpu::index values on that worker, ascending; empty for CPU runs
  int cpu_slots = 0;             // CPU slots the run (the rank) holds (DemandOf)
  int rank = 0;                  // 0..ranks-1; 0 for a run of one rank
};

enum class UnplacedReason {
  kInvalidRequest,       // the request is malformed (negative counts); it never places
  kNoWorkers,            // the snapshot has no workers
  kNeverFits,            // no worker could hold it even if it were idle
  kWaitingForResources,  // it would fit an idle worker but not the free resources now
  kHoldingReservation,   // as kWaitingForResources, and it holds `reserved_worker_id`'s resources
  kPlacedElsewhere,      // PlaceOnWorker only: this round placed it on another worker
  kQuota,                // its project holds its GPU quota already
};

// "INVALID_REQUEST", "NO_WORKERS", "NEVER_FITS", "WAITING_FOR_RESOURCES", "HOLDING_RESERVATION",
// "PLACED_ELSEWHERE", "QUOTA".
const char* UnplacedReasonName(UnplacedReason reason);

struct UnplacedRun {
  int64_t run_id = 0;
  UnplacedReason reason = UnplacedReason::kWaitingForResources;
  // For people, e.g. "needs 4 GPUs, the most free on any worker is 2".
  std::string message;
  int64_t reserved_worker_id = 0;  // set with kHoldingReservation, else 0 (a gang: its first)
};

struct PlacementResult {
  std::vector<PlacementDecision> placed;  // in the order the runs were considered
  std::vector<UnplacedRun> unplaced;      // every other pending run, in the same order
  std::vector<int64_t> considered;        // Place only: every run id, in consideration order
};

// One decision round over the whole cluster. InvalidArgument when the snapshot is inconsistent
// (a worker failing WorkerState::Validate, a repeated worker id or run id) or the options are
// invalid; a single malformed run does not fail the round, it is reported as kInvalidRequest.
absl::StatusOr<PlacementResult> Place(const ClusterSnapshot& snapshot,
                                      const PlacementOptions& options);

// The lease path: what `worker_id` gets now. Runs the same round as Place and keeps the
// decisions for that worker (a gang: its ranks there). `unplaced` lists the runs this round
// placed only on other workers (kPlacedElsewhere, "placed on worker N in this round", once per
// run), then the round's unplaced runs, each group in consideration order. FailedPrecondition when
// `worker_id` is not in the snapshot (unknown or LOST: it must register again), plus Place's
// errors.
absl::StatusOr<PlacementResult> PlaceOnWorker(const ClusterSnapshot& snapshot, int64_t worker_id,
                                              const PlacementOptions& options);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_PLACEMENT_H_
