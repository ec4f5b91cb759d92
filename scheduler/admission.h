// Admission: the scheduling cycle. One pass reads the cluster (PlacementState), lets the
// placement policy decide (scheduler/placement.h) and writes every decision to PostgreSQL in one
// statement (Store::AdmitRuns: PENDING -> ADMITTED with worker, GPUs and slots) BEFORE anyone
// acts on it. LeaseRuns then only hands a worker what was admitted to it (Store::LeaseAdmitted),
// without planning anything per call.
//
//   Admitter::RunOnce:  Snapshot -> Place -> Store::AdmitRuns
//   LeaseRuns:          Store::LeaseAdmitted (ADMITTED -> LEASED), and Wake() when empty
//   reaper:             Store::RequeueStaleAdmissions (ADMITTED -> PENDING after a timeout)
//
// What holds resources: the snapshot counts ADMITTED runs on their worker like LEASED and
// RUNNING attempts, so a pass never admits onto what an earlier pass set aside.
// Incremental: a pass reads only the head of each (project, priority) queue (the snapshot
// window, StorePlacementState's max_pending_per_queue) and remembers failed shapes within the
// pass, so its cost grows with what can be admitted, not with the backlog.
//
// Thread safety: RunOnce is serialized by the object (a pass never overlaps another of the same
// Admitter); Start/Wake/Stop from any thread. Only one process should run passes against one
// database (the control plane's leader lease); AdmitRuns does not re-check holds.
#ifndef SCALELAB_SCHEDULER_ADMISSION_H_
#define SCALELAB_SCHEDULER_ADMISSION_H_

#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/placement.h"
#include "scheduler/placement_state.h"
#include "scheduler/preemption.h"
#include "services/common/clock.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

class SchedulerMetrics;

struct AdmissionOptions {
  PlacementOptions placement;
  // The cycle runs this often, and at once when woken (a sweep submitted, a run finished, a
  // worker asking for work with nothing admitted to it).
  absl::Duration period = absl::Milliseconds(200);
  // An ADMITTED run its worker did not lease within this long goes back to PENDING (the worker
  // died or stopped polling). Must cover a few lease polls of a worker (1 s each by default).
  absl::Duration admission_timeout = absl::Seconds(30);
  // Preemption (scheduler/preemption.h): after placing, a waiting run may evict lower-priority
  // runs; its admission then waits for them (and is not requeued by admission_timeout meanwhile).
  PreemptionOptions preemption;

  absl::Status Validate() const;
};

// What one pass did.
struct AdmissionPass {
  int considered = 0;                 // pending runs in the snapshot
  std::vector<int64_t> admitted;      // run ids written ADMITTED
  std::vector<UnplacedRun> unplaced;  // why the others wait
  // Preemption: runs admitted onto lower-priority victims' resources, and how many victims.
  std::vector<int64_t> preemptors;
  int preempted = 0;
  absl::Duration duration;  // wall time of the pass (read, decide, write)
  // Its parts: PlacementState::Snapshot, Place, Store::AdmitRuns (committed when it returns).
  absl::Duration read_duration;
  absl::Duration decide_duration;
  absl::Duration write_duration;
};

class Admitter {
 public:
  // Nothing is owned; all must outlive this object. `metrics` may be null.
  Admitter(PlacementState* state, services::Store* store, SchedulerMetrics* metrics,
           AdmissionOptions options);
  ~Admitter();  // Stop()

  // One pass. Unavailable when the store cannot be reached (the next pass retries).
  absl::StatusOr<AdmissionPass> RunOnce(absl::Time now);

  // Starts the cycle thread (once): a pass every `period` and whenever woken.
  // `may_act` (optional) is asked before each pass: a standby scheduler (not the leader,
  // scheduler/leader.h) makes no admissions.
  void Start(services::Clock* clock, std::function<bool()> may_act = nullptr);
  // Asks for a pass soon (coalesced: many wakes before a pass cause one pass).
  void Wake();
  // Waits until a pass that began after this call has ended, at most `timeout`. False on
  // timeout or when no cycle thread runs.
  bool WaitForPass(absl::Duration timeout);
  void Stop();

 private:
  PlacementState* state_;
  services::Store* store_;
  SchedulerMetrics* metrics_;
  AdmissionOptions options_;

  absl::Mutex pass_mu_;  // serializes RunOnce

  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool running_ ABSL_GUARDED_BY(mu_) = false;
  int64_t passes_started_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t passes_ended_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

// One pass without the Admitter's serialization: the caller makes sure no other pass runs
// against the same database meanwhile. Exposed for GrantLeases (scheduler/leasing.h).
absl::StatusOr<AdmissionPass> RunAdmissionPass(PlacementState& state, services::Store& store,
                                               absl::Time now, const PlacementOptions& options);
// The same, followed by the preemption step (scheduler/preemption_pass.h) when `preemption` is
// not null and enabled.
absl::StatusOr<AdmissionPass> RunAdmissionPass(PlacementState& state, services::Store& store,
                                               absl::Time now, const PlacementOptions& options,
                                               const PreemptionOptions* preemption);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_ADMISSION_H_
