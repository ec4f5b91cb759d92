// Preemption (issue 9): which running runs a higher-priority run may evict. Pure policy over the
// state an admission pass already has (its snapshot after Place) plus what runs where; unit-tested
// without a database. The store persists the decisions (Store::RequestPreemptions), the worker
// tells the trainer (SIGTERM), the trainer checkpoints and exits kExitPreempted, and the retry
// policy requeues the victim at once (FailureClass PREEMPTED, no budget spent).
//
// Policy (PlanPreemptions), for each unplaced run in consideration order whose reason is
// kWaitingForResources or kHoldingReservation (never kQuota, kNeverFits, ...):
//   - Victims: LEASED or RUNNING attempts of a STRICTLY lower priority class on one worker, whose
//     preemption frees enough matching GPUs (model, memory: GpuMatches) and CPU slots for the run
//     together with what that worker has free; the worker must carry the run's labels and not be
//     one the run avoids. Runs of one class never preempt each other.
//   - Cheapest set, compared in this order: the highest class among the victims (evict only low
//     runs before touching a normal one), the number of victims, the work they lose (seconds
//     since each victim's newest checkpoint, or its start when it has none), then the worker id
//     and the victims' run ids (deterministic ties).
//   - Limits: at most `max_per_pass` preemptors per pass; a run preempted less than `cooldown`
//     ago is not a victim again (no thrashing); an attempt already being preempted is not chosen
//     twice; and a run that fits in what preemptions in flight are about to free (their victims'
//     resources that their preemptors do not take) waits for those instead of evicting more.
//   - The preemptor is admitted onto the victims' worker: it holds the victims' matching GPUs
//     first, then free ones, and its CPU slots; the store keeps it from being leased until every
//     victim's attempt has ended.
//
// Thread safety: pure functions over const inputs.
#ifndef SCALELAB_SCHEDULER_PREEMPTION_H_
#define SCALELAB_SCHEDULER_PREEMPTION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "scheduler/placement.h"
#include "scheduler/resources.h"

namespace scalelab::scheduler {

struct PreemptionOptions {
  // Off: admission never preempts (the default of tests that do not ask for it is on).
  bool enabled = true;
  // Most preemptors one admission pass may start (each may evict several victims). >= 1.
  int max_per_pass = 4;
  // A run preempted less than this long ago is not preempted again. >= 0.
  absl::Duration cooldown = absl::Minutes(5);
  // (How long a victim may take to checkpoint is the worker's: AgentOptions::preempt_grace.)

  absl::Status Validate() const;
};

// One LEASED or RUNNING attempt, as preemption looks at it.
struct RunningAttempt {
  int64_t run_id = 0;
  int32_t attempt = 0;
  int64_t sweep_id = 0;
  int64_t worker_id = 0;
  int priority = 0;              // PriorityClass as an int
  std::vector<int> gpu_indices;  // what the attempt holds on its worker
  int cpu_slots = 0;
  absl::Time started_at = absl::InfinitePast();
  // Its newest recorded checkpoint; InfinitePast when none (work is lost since started_at).
  absl::Time last_checkpoint_at = absl::InfinitePast();
  // When the run was last chosen as a victim; InfinitePast when never.
  absl::Time last_preempted_at = absl::InfinitePast();
  // A preemption of this attempt is in flight (requested, the attempt has not ended).
  bool preempt_requested = false;
};

// A preemptor admitted onto its victims' worker whose victims have not all ended yet.
struct InFlightPreemptor {
  int64_t run_id = 0;
  int64_t worker_id = 0;
  std::vector<int> gpu_indices;  // its admission
  int cpu_slots = 0;
};

struct PreemptionInput {
  // The workers of the pass's snapshot with this pass's placements already marked held (what is
  // free now). Running attempts on workers not listed here are never victims.
  std::vector<WorkerState> workers;
  std::vector<RunningAttempt> running;
  std::vector<InFlightPreemptor> in_flight;
};

struct PreemptionVictim {
  int64_t run_id = 0;
  int32_t attempt = 0;
  int priority = 0;
};

struct PreemptionDecision {
  int64_t preemptor_run_id = 0;
  int64_t preemptor_sweep_id = 0;
  int64_t worker_id = 0;
  std::vector<int> gpu_indices;  // the preemptor's admission on `worker_id`, ascending
  int cpu_slots = 0;
  std::vector<PreemptionVictim> victims;  // by run id
  // For people and the preemptions table, e.g. "critical run 812 (sweep 9) needs 2 GPUs and 1
  // CPU slot on worker 3".
  std::string reason;
};

// The preemptions to request now, in the order the runs were considered. `unplaced` is the
// pass's UnplacedRun list (consideration order) and `pending` the snapshot's runs (looked up by
// id). Deterministic for equal inputs. Disabled options give no decisions.
std::vector<PreemptionDecision> PlanPreemptions(const PreemptionInput& input,
                                                const std::vector<RunRequest>& pending,
                                                const std::vector<UnplacedRun>& unplaced,
                                                absl::Time now, const PreemptionOptions& options);

// The workers of `snapshot` with `placed` marked held: the free resources after a pass's
// placements (PreemptionInput::workers). A decision that no longer fits is skipped.
std::vector<WorkerState> WorkersAfterPlacement(const ClusterSnapshot& snapshot,
                                               const std::vector<PlacementDecision>& placed);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_PREEMPTION_H_
