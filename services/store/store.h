// The results store: sweeps, runs, attempts, transitions, metric points and workers in
// PostgreSQL (schema in migrations/). Every run state change is written, together with a
// run_transitions row, in the same transaction as the decision that caused it, so a restarted
// scheduler continues where it stopped.
//
// Thread-safe: every method takes a pooled connection for one transaction.
// Errors: Unavailable when PostgreSQL cannot be reached (retry the call), NotFound for unknown
// ids, FailedPrecondition when a report names an attempt that is no longer current, Internal
// for anything the database refused unexpectedly.
#ifndef SCALELAB_SERVICES_STORE_STORE_H_
#define SCALELAB_SERVICES_STORE_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/results.pb.h"
#include "scalelab/v1/worker.pb.h"
#include "services/store/placement_snapshot.h"
#include "services/store/preemption_rows.h"

namespace scalelab::services {

// Defined in services/store/internal/pg_pool.h, which includes libpqxx: only the store's own
// .cc files see it, so code that includes this header neither compiles against nor links libpqxx.
class PgPool;

struct StoreOptions {
  std::string url;               // libpq URI; required
  int pool_size = 4;             // connections
  bool apply_migrations = true;  // apply migrations/ at Open
  // ReportMetrics COPYs a batch of at least this many points straight into metric_points when
  // none of them can be stored already (steps beyond the attempt's last); other batches go as
  // one INSERT ... ON CONFLICT of arrays (store_ingest.cc says why; scalelab-ingest-bench
  // --compare_paths measures both). 0 = COPY whenever possible. Default 16.
  int copy_min_points = 16;
  absl::Status Validate() const;
};

// One run of a sweep as produced by expansion, before it is stored.
struct NewRun {
  int index = 0;
  v1::RunConfig config;
  std::map<std::string, std::string> overrides;
  // Pipelines. UNSPECIFIED = the sweep's kind; "" = the main stage ("main" unless
  // SweepSpec.stage names it).
  v1::RunKind kind = v1::RUN_KIND_UNSPECIFIED;
  std::string stage;
  // The index of the run (of the same call, listed before this one) it starts from; -1 = none.
  // CreateSweep stores that run's id as parent_run_id and as config.init.from_run.
  int parent_index = -1;
  int max_attempts = 0;  // 0 = the sweep's
  // A search sweep's run: its place in the search tree (search_nodes). "" = not a search run.
  std::string search_operator;
  std::vector<int64_t> search_parents;     // run ids
  std::string search_policy_state = "{}";  // JSON object
};

// What a search's objective reads of a succeeded run: the last value its current attempt
// reported of `metric` (from metric_points), or with `eval` set, the newest evals row (latest
// attempt, highest step) whose metric is `metric`, with k = `k` when k > 0, over the whole task
// set (category ''), whatever the task set and split.
struct SearchObjectiveQuery {
  bool eval = false;
  std::string metric = "val_loss";
  int k = 0;
};

// A search sweep as the search loop sees it (GetSearchState).
struct SearchState {
  v1::Sweep sweep;
  int32_t generation = 0;  // steps stored so far
  bool open = false;       // the search may still make runs
  int32_t skipped = 0;     // generated configs that failed validation
  std::vector<std::map<std::string, std::string>> skipped_points;  // their points, distinct
  int32_t runs = 0;        // runs of the sweep (search nodes or not)
  int32_t unfinished = 0;  // of those, not terminal
  // Every run of the sweep in index order, with has_objective/objective read for the succeeded
  // ones by the query given.
  std::vector<v1::SearchNode> nodes;
};

// A config a search step generated that failed validation: recorded, never stored as a run.
struct SkippedSearchConfig {
  std::map<std::string, std::string> point;
  std::vector<int64_t> parents;
  std::string op;
  std::string reason;
};

struct CreateSweepResult {
  v1::Sweep sweep;
  bool created = false;  // false: the idempotency key matched an existing sweep
};

// What the scheduler's policy decides for an attempt that ended badly or lost its lease
// (scheduler/retry_policy.h). The store persists it with the run: its state, when and where the
// next attempt may start, and which retry budget it spent.
struct RetryDecision {
  enum class Budget { kNone, kInfra, kOom };
  // Implicit on purpose: a decider that only picks a state (tests, older callers) stays valid.
  RetryDecision(v1::RunState next_state = v1::RUN_STATE_FAILED) : next(next_state) {}  // NOLINT
  v1::RunState next;                              // PENDING (retry), FAILED or CANCELLED
  absl::Duration backoff = absl::ZeroDuration();  // PENDING: not leased before now + backoff
  bool avoid_worker = false;      // PENDING: add the failed attempt's worker to runs.avoid_workers
  Budget spends = Budget::kNone;  // which of the run's retry counters grows by one
  std::string why;                // appended to the transition's reason
};

// The retries a run has spent, per budget (runs.infra_retries, runs.oom_retries).
struct RetryCounts {
  int infra_retries = 0;
  int oom_retries = 0;
};

// Called inside the store's transaction with the run as stored and its retry counts. Built from
// any callable taking (run, class, counts) or (run, class) and returning a RetryDecision or a
// RunState.
class RetryDecider {
 public:
  template <typename F, std::enable_if_t<std::is_invocable_v<const F&, const v1::Run&,
                                                             v1::FailureClass, const RetryCounts&>,
                                         int> = 0>
  RetryDecider(F decide) : decide_(std::move(decide)) {}  // NOLINT: implicit on purpose
  template <typename F,
            std::enable_if_t<std::is_invocable_v<const F&, const v1::Run&, v1::FailureClass> &&
                                 !std::is_invocable_v<const F&, const v1::Run&, v1::FailureClass,
                                                      const RetryCounts&>,
                             int> = 0>
  RetryDecider(F decide)  // NOLINT: implicit on purpose
      : decide_([decide = std::move(decide)](const v1::Run& run, v1::FailureClass failure_class,
                                             const RetryCounts&) {
          return RetryDecision(decide(run, failure_class));
        }) {}
  RetryDecision operator()(const v1::Run& run, v1::FailureClass failure_class,
                           const RetryCounts& counts) const {
    return decide_(run, failure_class, counts);
  }

 private:
  std::function<RetryDecision(const v1::Run&, v1::FailureClass, const RetryCounts&)> decide_;
};

struct HeartbeatResult {
  bool known = true;                 // false: unknown or LOST worker, it must re-register
  std::vector<v1::RunAttempt> stop;  // attempts the worker must stop
  // Preemption: attempts to checkpoint and stop (HeartbeatResponse.preempt), while in flight.
  std::vector<v1::RunAttempt> preempt;
  // Fencing: the listed attempts whose lease_token was not their run's current lease, each as
  // "lease token T is not the current lease of run R (current U)".
  std::vector<std::string> fenced;
};

// Failures per worker, the facts quarantine decides on (scheduler/quarantine.h).
struct WorkerFailureStats {
  int64_t worker_id = 0;
  std::string state;       // "ALIVE" | "QUARANTINED"
  int infra_failures = 0;  // attempts ended with an infrastructure class in the window
  int healthy_streak = 0;  // consecutive heartbeats whose health checks all passed
  std::optional<absl::Time> quarantined_at;
};

// One row of quarantine_events.
struct QuarantineEvent {
  int64_t worker_id = 0;
  std::string event;  // "QUARANTINED" | "RELEASED"
  std::string reason;
  absl::Time at;
};

struct ExpiredLease {
  int64_t run_id = 0;
  int32_t attempt = 0;
  int64_t worker_id = 0;
  v1::RunState next_state = v1::RUN_STATE_UNSPECIFIED;
};

// A pending run ended because it can never start (FailUnstartableRuns).
struct UnstartableRun {
  int64_t run_id = 0;
  std::string reason;
  v1::RunState state = v1::RUN_STATE_FAILED;  // FAILED, or CANCELLED for a pipeline child
};

struct ReportMetricsResult {
  int stored = 0;           // points new to the store
  double tokens_added = 0;  // growth of the run's trained tokens through this report
};

// Runs one answer carries at most, so that an answer stays far below gRPC's 4 MB message limit.
inline constexpr int kMaxRunPageSize = 1000;

struct RunPage {
  std::vector<v1::Run> runs;
  std::string next_page_token;  // "" = no runs after these; else pass to the next call
  int64_t total_count = 0;      // runs matching the filter, over all pages
};

struct StoreCounts {
  std::map<std::string, int64_t> runs_by_state;     // "PENDING" -> n
  std::map<std::string, int64_t> workers_by_state;  // "ALIVE" -> n
};

// A fitted law of one group of a sweep, as the scheduler's fitter computed it (store_fits.cc).
// Units are those of the law's inputs: N in parameters, D in tokens, C in FLOPs.
struct StoredFit {
  int64_t id = 0;  // assigned by SaveFit; ignored by it
  int64_t sweep_id = 0;
  std::string law;                           // "chinchilla" | "compute"
  std::map<std::string, std::string> group;  // group_by key -> value; empty = the whole sweep
  std::vector<std::string> param_names;      // "E", "A", "alpha", ...
  std::vector<double> params;                // at the optimum, in param_names order
  // Bootstrap refits, row-major: samples.size() / params.size() rows of params.size() values
  // in param_names order. Empty when no refit succeeded (or none was asked for).
  std::vector<double> samples;
  double confidence = 0;  // interval level the fit was made for, e.g. 0.95
  double objective = 0;   // loss of the fit at the optimum
  int n_points = 0;
  std::vector<int64_t> run_ids;  // the runs fitted
  // Held-out extrapolation error (mean |pred - actual| / actual); NaN = not computed.
  double holdout_rel_error = std::numeric_limits<double>::quiet_NaN();
  std::string message;    // why the group has no usable fit; params may then be empty
  absl::Time created_at;  // set by SaveFit (the server's clock); ignored by it
};

// One attempt of a run with what reliability and carbon reports need (ListAttempts).
struct AttemptRecord {
  int64_t run_id = 0;
  int64_t sweep_id = 0;
  int32_t attempt = 0;
  int64_t worker_id = 0;
  v1::RunState state = v1::RUN_STATE_UNSPECIFIED;  // LEASED, RUNNING or how it ended
  absl::Time started_at;
  std::optional<absl::Time> ended_at;  // absent while the attempt runs
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  int32_t term_signal = 0;  // the signal that ended the trainer, 0 when none
  int64_t lease_token = 0;  // the attempt's fencing token (0 for attempts leased before 0008)
  std::string evidence;     // what the failure class was decided from ("" when it did not fail)
  // GPUs held, or CPU slots when none: the energy report's figure when it gave one, else what
  // placement granted.
  int32_t devices = 0;
  int32_t gpus = 0;       // GPUs placement granted
  int32_t cpu_slots = 0;  // CPU slots placement granted
  // As the worker reported it at completion (zeros when it did not: lost, cancelled before
  // reporting, older workers); wall_s = ended_at - started_at (0 while running).
  v1::EnergyReport energy;
  std::vector<absl::Time> checkpoint_times;  // created_at of its checkpoint artifacts, ascending
};

class Store {
 public:
  // Connects, checks the server answers and (by default) applies pending migrations.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();  // out of line: PgPool is incomplete here

  // --- sweeps and runs -------------------------------------------------------------------
  // Every v1::Run the store returns carries, besides its row, `record` (as last reported; unset
  // until a report had one) and `energy`: the sum over its attempts of what their completions
  // reported (joules, device-seconds), the wall time of its ended attempts, the most devices
  // an attempt held, and the energy source and device kind, or "mixed" when attempts differ.
  // Unset when all of that is zero. Read in the same query as the runs (no query per run).
  // Stores the sweep and all its runs (PENDING) in one transaction, in the order given. With a
  // non-empty idempotency key that already names a sweep, stores nothing and returns that sweep;
  // if that sweep's spec differs from `spec`, FailedPrecondition. InvalidArgument when a run's
  // parent_index does not name an earlier run of `runs`.
  absl::StatusOr<CreateSweepResult> CreateSweep(const v1::SweepSpec& spec,
                                                const std::string& manifest,
                                                const std::string& idempotency_key,
                                                const std::vector<NewRun>& runs);
  absl::StatusOr<v1::Sweep> GetSweep(int64_t sweep_id);
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps(const std::string& project, int limit);
  // sweep_id 0 = every sweep; state UNSPECIFIED = any. The first `limit` runs (0 = 1000) in
  // (sweep, index) order; ListRunsPage reaches the rest.
  absl::StatusOr<std::vector<v1::Run>> ListRuns(int64_t sweep_id, v1::RunState state, int limit);
  // One page of the runs ListRuns would list: at most `page_size` (<= 0 = 1000, capped at
  // kMaxRunPageSize) after the run `page_token` names ("" = from the first). Errors: NotFound
  // (no such sweep), InvalidArgument (a page_token that no answer gave).
  absl::StatusOr<RunPage> ListRunsPage(int64_t sweep_id, v1::RunState state, int page_size,
                                       const std::string& page_token);
  absl::StatusOr<v1::Run> GetRun(int64_t run_id);
  // Every non-terminal run becomes CANCELLED; the sweep becomes CANCELLED.
  absl::StatusOr<v1::Sweep> CancelSweep(int64_t sweep_id, const std::string& reason);

  // --- workers and leases ----------------------------------------------------------------
  absl::StatusOr<int64_t> RegisterWorker(const v1::RegisterRequest& request);
  // Records liveness, extends the lease of every listed attempt the worker still holds to
  // now + lease_ttl, and lists the attempts it must stop.
  // A listed attempt with a non-zero lease_token that is not its run's current one is fenced:
  // not renewed, told to stop, and listed in `fenced`. `health` (the worker's checks) is stored
  // with the worker: all ok grows healthy_streak, any failure resets it and sets health_ok false.
  // A QUARANTINED worker heartbeats like an ALIVE one.
  absl::StatusOr<HeartbeatResult> Heartbeat(int64_t worker_id,
                                            const std::vector<v1::RunAttempt>& running,
                                            absl::Time now, absl::Duration lease_ttl,
                                            const std::vector<v1::HealthCheck>& health = {});

  // --- failures and quarantine (store_quarantine.cc) ----------------------------------------
  // Every ALIVE or QUARANTINED worker with its infrastructure failures (SYSTEM_SOFTWARE,
  // HARDWARE_*, NODE_LOST, OUT_OF_MEMORY) of attempts that ended after `since`.
  absl::StatusOr<std::vector<WorkerFailureStats>> ListWorkerFailureStats(absl::Time since);
  // ALIVE -> QUARANTINED (no new leases; its running attempts continue), with an event row.
  // Returns false when the worker was not ALIVE (nothing changed).
  absl::StatusOr<bool> QuarantineWorker(int64_t worker_id, const std::string& reason,
                                        absl::Time now);
  // QUARANTINED -> ALIVE, with an event row. False when it was not QUARANTINED.
  absl::StatusOr<bool> ReleaseWorker(int64_t worker_id, const std::string& reason);
  // quarantine_events of one worker (0 = all), oldest first.
  absl::StatusOr<std::vector<QuarantineEvent>> ListQuarantineEvents(int64_t worker_id);

  // --- placement (store_placement.cc) ----------------------------------------------------
  // Leasing is split in two: the scheduler reads a snapshot, decides with its placement policy
  // (scheduler/placement.h), and the store persists the decisions. The store decides nothing.
  //
  // ALIVE workers with what their LEASED/RUNNING attempts hold, and the PENDING runs in queue
  // order, read from one database snapshot. Stale by the time it is used; CommitLeases re-checks.
  // ADMITTED runs count as held on the worker they are admitted to. `max_pending_per_queue` > 0
  // reads only that many runs of each (project, priority class) queue, so a cycle over 100,000
  // pending runs reads the heads of the queues, not all of them (0 = every pending run).
  absl::StatusOr<PlacementSnapshot> ReadPlacementSnapshot(int max_pending_per_queue = 0);

  // --- preemption (store_preemption.cc) ----------------------------------------------------
  // What the preemption policy decides on: every LEASED or RUNNING attempt on an eligible
  // worker (its class, resources, start, newest checkpoint, last preemption, whether one is in
  // flight) and the preemptors still waiting for victims. Only attempts of sweeps whose class is
  // one of `victim_classes` ("low", ...) are read; none when it is empty. First settles the
  // preemptions whose victim attempt has ended ('requested' -> 'done' with victim_ended_at).
  absl::StatusOr<StoredPreemptionState> ReadPreemptionState(
      const std::vector<std::string>& victim_classes);
  // Persists the policy's decisions, each in full or not at all, in one transaction: the
  // preemptor (still PENDING) becomes ADMITTED onto the victims' worker with the given GPUs and
  // slots (run_transitions reason "admitted to worker W ... preempting runs ...: <reason>"), and
  // one 'requested' preemptions row per victim attempt (still its run's current LEASED or
  // RUNNING attempt). A decision whose preemptor or victims moved on meanwhile is skipped.
  // Returns the preemptor run ids admitted.
  absl::StatusOr<std::vector<int64_t>> RequestPreemptions(
      const std::vector<PreemptionRequest>& requests, absl::Time now);
  // The attempts on `worker_id` with a preemption in flight (HeartbeatResponse.preempt).
  absl::StatusOr<std::vector<v1::RunAttempt>> PreemptionsForWorker(int64_t worker_id);
  // preemptions rows, newest first: only those in flight, or the newest `limit` of all.
  absl::StatusOr<std::vector<PreemptionRecord>> ListPreemptions(bool in_flight_only,
                                                                int limit = 100);

  // --- admission (store_admission.cc) ------------------------------------------------------
  // Persists the scheduling cycle's decisions in one statement: each granted run still PENDING
  // becomes ADMITTED with its worker, GPUs, CPU slots and `now`, with its run_transitions row.
  // A run no longer PENDING (cancelled meanwhile) is skipped. Returns the ids admitted.
  // Only one process admits at a time (the scheduler's cycle; the leader lease keeps a second
  // scheduler from running one), so the grants are not re-checked against the holds here.
  absl::StatusOr<std::vector<int64_t>> AdmitRuns(const std::vector<AdmissionGrant>& grants,
                                                 absl::Time now);
  // Hands `worker_id` up to `max_runs` of the runs admitted to it (ADMITTED -> LEASED, a new
  // attempt with the admitted GPUs and slots, lease until now + lease_ttl), oldest admission
  // first. SKIP LOCKED: never waits for and never hands out twice. FailedPrecondition when the
  // worker is unknown or LOST.
  // Gangs: one lease per rank admitted to this worker. The first of a gang's ranks leased starts
  // its attempt (the run becomes LEASED; rank 0's grant is the attempt's) and every rank's lease
  // runs from then; a rank leased later joins that attempt. All ranks share the attempt and its
  // lease token; each lease's spec.execution carries the rank, world_size, local_rank (among the
  // run's ranks on this worker), backend ("gloo" on CPUs, "nccl" on GPUs) and rendezvous
  // "<rank 0's worker address or hostname>:<ports.base + lease token % ports.count>".
  absl::StatusOr<std::vector<v1::Lease>> LeaseAdmitted(int64_t worker_id, int max_runs,
                                                       absl::Time now, absl::Duration lease_ttl,
                                                       const RendezvousPorts& ports = {});
  // ADMITTED runs whose worker did not lease them within `timeout`, or whose worker is no
  // longer ALIVE, go back to PENDING (with their transition). Returns how many.
  absl::StatusOr<int> RequeueStaleAdmissions(absl::Time now, absl::Duration timeout);
  // A stopping worker: ALIVE or QUARANTINED -> DRAINING (admission skips it; its heartbeats
  // still renew the leases it holds), and its ADMITTED runs go back to PENDING in the same
  // transaction (with their transitions). Returns how many were requeued. Idempotent;
  // NotFound for an unknown worker id; a LOST worker stays LOST.
  absl::StatusOr<int> DrainWorker(int64_t worker_id, const std::string& reason);
  // Sets a project's GPU quota (0 = none) and fair-share weight (> 0), creating the project when
  // it does not exist. InvalidArgument naming the field for a negative quota or weight <= 0.
  absl::Status SetProjectPolicy(const std::string& name, int gpu_quota, double weight);
  // PENDING runs per priority class name ("low", "normal", "high", "critical").
  absl::StatusOr<std::map<std::string, int64_t>> PendingByPriority();
  // Leases the granted runs to `worker_id` in one transaction, starting a new attempt for each
  // (lease until now + lease_ttl) and recording its GPUs and CPU slots with the attempt. A grant
  // is dropped, not an error, when its run is no longer PENDING, is locked by another
  // transaction (SKIP LOCKED: two schedulers never grant one run), still waits for the final
  // weights of init.from_run, or when its GPUs or slots are no longer free on that worker (held
  // by its LEASED/RUNNING attempts or by an earlier grant of this call). Returns the leases of
  // the grants kept, in grant order, with spec.execution.gpu_indices set to the granted GPUs.
  // FailedPrecondition when the worker is unknown or LOST; NotFound when a kept run's
  // init.from_artifact does not exist. A QUARANTINED worker gets no leases (an empty answer).
  // A run in its retry backoff (runs.not_before later than now) is dropped like one that is no
  // longer pending. Each lease carries a new lease token (spec.lease_token), stored with the
  // run and its attempt: the fencing token every report of the attempt must carry.
  absl::StatusOr<std::vector<v1::Lease>> CommitLeases(int64_t worker_id,
                                                      const std::vector<LeaseGrant>& grants,
                                                      absl::Time now, absl::Duration lease_ttl);

  // --- attempts ------------------------------------------------------------------------------
  // Stores points once per (run, attempt, step, name) and counts those that were new; the first
  // report of an attempt moves the run to RUNNING. Moves the run's progress (step, tokens,
  // latest train_loss / val_loss) and, when the request has a non-empty record, replaces the
  // run's record with it. FailedPrecondition when the attempt is not the run's current one.
  absl::StatusOr<ReportMetricsResult> ReportMetrics(const v1::ReportMetricsRequest& request,
                                                    absl::Time now, absl::Duration lease_ttl);
  // Ends an attempt. Success -> SUCCEEDED; failure -> whatever `decide` says (PENDING to retry,
  // FAILED to stop). The request's energy report (when it has one) is stored with the attempt.
  // A report for a run that was cancelled meanwhile is accepted and records only the energy.
  // FailedPrecondition when the attempt is not current, or (fencing) when the request's
  // non-zero lease_token is not the run's current one; the same holds for ReportMetrics,
  // ReportArtifacts and ReportEvals. The class, signal and failure_evidence are stored with the
  // attempt; a retry's backoff, avoided worker and budget with the run.
  absl::StatusOr<v1::RunState> CompleteRun(const v1::CompleteRunRequest& request,
                                           const RetryDecider& decide);
  // Runs whose lease ended before `now` go where `decide` says (NODE_LOST); workers silent for
  // longer than `worker_timeout` become LOST.
  absl::StatusOr<std::vector<ExpiredLease>> ExpireLeases(absl::Time now,
                                                         absl::Duration worker_timeout,
                                                         const RetryDecider& decide);

  // --- results -----------------------------------------------------------------------------
  absl::StatusOr<v1::GetRunMetricsResponse> GetRunMetrics(int64_t run_id,
                                                          const std::vector<std::string>& names);
  // One curve per run of the sweep, in run index order: the run (as ListRuns gives it) and the
  // points of `metric` ("" = val_loss) its current attempt reported, in step order. With
  // max_points > 0, a curve of more points is downsampled on the server to exactly max_points,
  // evenly spaced by position, first and last kept (max_points 1: the last point only).
  // NotFound: no such sweep; InvalidArgument: max_points < 0. Reads one snapshot with two
  // queries (runs, then every run's points), whatever the number of runs.
  absl::StatusOr<std::vector<v1::RunCurve>> GetSweepCurves(int64_t sweep_id,
                                                           const std::string& metric,
                                                           int max_points = 0);
  absl::StatusOr<StoreCounts> Counts();
  // Every attempt of the sweep's runs (sweep_id 0 = of every sweep), ordered by run id and
  // attempt, in one query whatever their number. NotFound when sweep_id names no sweep.
  // (store_attempts.cc)
  absl::StatusOr<std::vector<AttemptRecord>> ListAttempts(int64_t sweep_id);

  // --- fits (store_fits.cc) -------------------------------------------------------------------
  // The store keeps fits; the scheduler decides when to fit, how to group, and what a fit is.
  //
  // Stores `fit` as the fit of (sweep_id, law, group), replacing an earlier one (its id is kept,
  // created_at becomes now). Returns the row's id. InvalidArgument when law is empty, params
  // and param_names differ in length, or samples is not a whole number of params rows;
  // NotFound when the sweep does not exist.
  absl::StatusOr<int64_t> SaveFit(const StoredFit& fit);
  // The sweep's fits ordered by law, then group. NotFound when the sweep does not exist.
  absl::StatusOr<std::vector<StoredFit>> ListFits(int64_t sweep_id);
  // Up to `limit` sweeps (<= 0: 100), oldest first, that may have a fit group to (re)fit: the
  // spec does not say fit.law "none" and some run reached a terminal state (SUCCEEDED, FAILED,
  // CANCELLED) after the sweep's newest fit row was written (or there is none). Which groups are
  // finished and stale is the caller's decision (scheduler/fitter.h); it must save a row for each
  // group it fits, with a message where it could not fit, or the sweep is returned again.
  absl::StatusOr<std::vector<int64_t>> SweepsWithStaleFits(int limit);

  // --- evaluation results (store_evals.cc) ---------------------------------------------------
  // Stores the results of the worker's current attempt, one row per (run, attempt, step,
  // task_set, split, category, metric, k): a re-sent result replaces its row (results repeated
  // within the batch: the last one counts). Returns the rows written. InvalidArgument naming the
  // result and field when any breaks runspec::ValidateEvalResult or the batch is too big (nothing
  // is written); NotFound for an unknown run; FailedPrecondition when the attempt is not current.
  absl::StatusOr<int> ReportEvals(const v1::ReportEvalsRequest& request);
  // The results of request.run_id or of every run of request.sweep_id (exactly one > 0, else
  // InvalidArgument), filtered by task_set, split and metric when non-empty, ordered by run,
  // step, task_set, split, category, metric, k (then attempt). Without all_attempts only the
  // latest attempt's result of each key. NotFound when the run or sweep does not exist;
  // FailedPrecondition when more than 20,000 rows match (narrow the filters).
  absl::StatusOr<std::vector<v1::EvalResult>> GetEvals(const v1::GetEvalsRequest& request);

  // --- artifacts (store_artifacts.cc) -------------------------------------------------------
  // Records the artifacts of the worker's current attempt; one row per (run, attempt, kind,
  // step), a re-sent one is returned as first stored. FailedPrecondition when the attempt is not
  // current; InvalidArgument for a kind other than "checkpoint" or "final" or an empty location.
  absl::StatusOr<std::vector<v1::Artifact>> ReportArtifacts(
      const v1::ReportArtifactsRequest& request);
  // Every artifact of a run, ordered by attempt, step, id. NotFound when the run does not exist.
  absl::StatusOr<std::vector<v1::Artifact>> ListArtifacts(int64_t run_id);
  // Ends every pending run whose init.from_run names a run that ended (SUCCEEDED, FAILED or
  // CANCELLED) without final weights from a successful attempt: it could never start. A pipeline
  // child (its parent_run_id is that run) becomes CANCELLED (class CANCELLED) with a message naming
  // the parent, and so, in the same transaction, do its own pending descendants; any other such run
  // becomes FAILED (class USER). Returns what it ended, with the reason stored as the run's
  // message; each change has its run_transitions row and the sweeps' states are refreshed.
  absl::StatusOr<std::vector<UnstartableRun>> FailUnstartableRuns();
  // --- adaptive search (store_search.cc) -----------------------------------------------------
  // The store keeps the search's tree and progress; the policy lives in the scheduler
  // (scheduler/search_policy.h). CreateSweep stores a NewRun's search fields as its search_nodes
  // row (generation 0) and opens the search of a sweep whose spec has sweep.search.
  //
  // Sweeps whose search is open, oldest first. One index scan.
  absl::StatusOr<std::vector<int64_t>> ListOpenSearches();
  // The sweep, the search's progress and tree. NotFound: no such sweep.
  absl::StatusOr<SearchState> GetSearchState(int64_t sweep_id, const SearchObjectiveQuery& query);
  // One search step, in one transaction: when the sweep's generation is still `generation`,
  // stores `runs` (PENDING, indexes continuing after the sweep's last, each with its search_nodes
  // row at generation + 1; NewRun.index is ignored), records `skipped`, moves the generation to
  // generation + 1, closes the search when `close` and refreshes the sweep's state. Returns the
  // new runs' ids. Aborted when the generation moved (another scheduler took this step: read the
  // state again); FailedPrecondition when runs are given for a CANCELLED sweep or one whose
  // search is closed; NotFound: no such sweep.
  absl::StatusOr<std::vector<int64_t>> AddSearchRuns(
      int64_t sweep_id, int32_t generation, const std::vector<NewRun>& runs,
      const std::vector<SkippedSearchConfig>& skipped, bool close);

  // OK when `init` names nothing or something that exists: a run (any state) or an artifact.
  // InvalidArgument naming init.from_run / init.from_artifact otherwise. For submission.
  absl::Status CheckInitExists(const v1::InitSpec& init);

  // --- control plane (store_control.cc) ----------------------------------------------------
  // The leader lease (table scheduler_leader, migration 0010). Takes or renews the lease for
  // `holder` until the database's now() + ttl: renews when `holder` holds it at `epoch`, takes it
  // (epoch + 1) when it has expired or was never taken. Returns the epoch held, or 0 when another
  // holder's lease is still live. Unavailable when PostgreSQL cannot be reached.
  absl::StatusOr<int64_t> AcquireLeadership(const std::string& holder, int64_t epoch,
                                            absl::Duration ttl);
  // Gives the lease up at once (a standby takes over at its next attempt). No-op when `holder`
  // no longer holds it at `epoch`.
  absl::Status ReleaseLeadership(const std::string& holder, int64_t epoch);
  // The fencing token of the leader-only writes (ExpireLeases, FailUnstartableRuns): when
  // non-zero, those transactions first check, with a share lock on the lease row, that `epoch`
  // is still the live lease, and return FailedPrecondition without writing otherwise. 0 (the
  // default) checks nothing. Thread-safe.
  void SetLeaderFence(int64_t epoch) { leader_epoch_.store(epoch); }
  int64_t leader_fence() const { return leader_epoch_.load(); }
  // The libpq URI the store connects to (for a LISTEN connection of its own).
  const std::string& url() const { return url_; }

 private:
  Store(std::unique_ptr<PgPool> pool, const StoreOptions& options);
  std::unique_ptr<PgPool> pool_;
  const int copy_min_points_;
  const std::string url_;
  std::atomic<int64_t> leader_epoch_{0};
  // ReadPlacementSnapshot's parsed worker inventories by worker id. workers.inventory is written
  // once, when RegisterWorker inserts the row (a re-registration is a new row), so a snapshot
  // parses only the inventories of workers it has not seen: parsing 5,000 inventories' JSON was
  // most of a snapshot's cost (bench/README.md, scalelab-admission-bench).
  std::mutex inventory_mu_;
  std::map<int64_t, v1::RegisterRequest> inventories_;  // guarded by inventory_mu_
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_STORE_H_
