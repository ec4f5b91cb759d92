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

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/results.pb.h"
#include "scalelab/v1/worker.pb.h"
#include "services/store/placement_snapshot.h"

namespace scalelab::services {

// Defined in services/store/internal/pg_pool.h, which includes libpqxx: only the store's own
// .cc files see it, so code that includes this header neither compiles against nor links libpqxx.
class PgPool;

struct StoreOptions {
  std::string url;               // libpq URI; required
  int pool_size = 4;             // connections
  bool apply_migrations = true;  // apply migrations/ at Open
  absl::Status Validate() const;
};

// One run of a sweep as produced by expansion, before it is stored.
struct NewRun {
  int index = 0;
  v1::RunConfig config;
  std::map<std::string, std::string> overrides;
};

struct CreateSweepResult {
  v1::Sweep sweep;
  bool created = false;  // false: the idempotency key matched an existing sweep
};

// What the scheduler's policy decides for an attempt that ended badly or lost its lease.
// Called inside the store's transaction with the run as stored.
using RetryDecider =
    std::function<v1::RunState(const v1::Run& run, v1::FailureClass failure_class)>;

struct HeartbeatResult {
  bool known = true;                 // false: unknown or LOST worker, it must re-register
  std::vector<v1::RunAttempt> stop;  // attempts the worker must stop
};

struct ExpiredLease {
  int64_t run_id = 0;
  int32_t attempt = 0;
  int64_t worker_id = 0;
  v1::RunState next_state = v1::RUN_STATE_UNSPECIFIED;
};

// A pending run failed because it can never start (FailUnstartableRuns).
struct UnstartableRun {
  int64_t run_id = 0;
  std::string reason;
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

class Store {
 public:
  // Connects, checks the server answers and (by default) applies pending migrations.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();  // out of line: PgPool is incomplete here

  // --- sweeps and runs -------------------------------------------------------------------
  // Stores the sweep and all its runs (PENDING) in one transaction. With a non-empty
  // idempotency key that already names a sweep, stores nothing and returns that sweep; if that
  // sweep's spec differs from `spec`, FailedPrecondition.
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
  absl::StatusOr<HeartbeatResult> Heartbeat(int64_t worker_id,
                                            const std::vector<v1::RunAttempt>& running,
                                            absl::Time now, absl::Duration lease_ttl);

  // --- placement (store_placement.cc) ----------------------------------------------------
  // Leasing is split in two: the scheduler reads a snapshot, decides with its placement policy
  // (scheduler/placement.h), and the store persists the decisions. The store decides nothing.
  //
  // ALIVE workers with what their LEASED/RUNNING attempts hold, and the PENDING runs in queue
  // order, read from one database snapshot. Stale by the time it is used; CommitLeases re-checks.
  absl::StatusOr<PlacementSnapshot> ReadPlacementSnapshot();
  // Leases the granted runs to `worker_id` in one transaction, starting a new attempt for each
  // (lease until now + lease_ttl) and recording its GPUs and CPU slots with the attempt. A grant
  // is dropped, not an error, when its run is no longer PENDING, is locked by another
  // transaction (SKIP LOCKED: two schedulers never grant one run), still waits for the final
  // weights of init.from_run, or when its GPUs or slots are no longer free on that worker (held
  // by its LEASED/RUNNING attempts or by an earlier grant of this call). Returns the leases of
  // the grants kept, in grant order, with spec.execution.gpu_indices set to the granted GPUs.
  // FailedPrecondition when the worker is unknown or LOST; NotFound when a kept run's
  // init.from_artifact does not exist.
  absl::StatusOr<std::vector<v1::Lease>> CommitLeases(int64_t worker_id,
                                                      const std::vector<LeaseGrant>& grants,
                                                      absl::Time now, absl::Duration lease_ttl);

  // --- attempts ------------------------------------------------------------------------------
  // Stores points once per (run, attempt, step, name); the first report of an attempt moves
  // the run to RUNNING. FailedPrecondition when the attempt is not the run's current one.
  absl::StatusOr<ReportMetricsResult> ReportMetrics(const v1::ReportMetricsRequest& request,
                                                    absl::Time now, absl::Duration lease_ttl);
  // Ends an attempt. Success -> SUCCEEDED; failure -> whatever `decide` says (PENDING to retry,
  // FAILED to stop). A report for a run that was cancelled meanwhile is accepted and changes
  // nothing. FailedPrecondition when the attempt is not current.
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
  absl::StatusOr<std::vector<v1::RunCurve>> GetSweepCurves(int64_t sweep_id,
                                                           const std::string& metric);
  absl::StatusOr<StoreCounts> Counts();

  // --- artifacts (store_artifacts.cc) -------------------------------------------------------
  // Records the artifacts of the worker's current attempt; one row per (run, attempt, kind,
  // step), a re-sent one is returned as first stored. FailedPrecondition when the attempt is not
  // current; InvalidArgument for a kind other than "checkpoint" or "final" or an empty location.
  absl::StatusOr<std::vector<v1::Artifact>> ReportArtifacts(
      const v1::ReportArtifactsRequest& request);
  // Every artifact of a run, ordered by attempt, step, id. NotFound when the run does not exist.
  absl::StatusOr<std::vector<v1::Artifact>> ListArtifacts(int64_t run_id);
  // Fails (PENDING -> FAILED, class USER) every pending run whose init.from_run names a run that
  // ended FAILED or CANCELLED without final weights from a successful attempt: it could never
  // start. Returns what it failed, with the reason stored as the run's message.
  absl::StatusOr<std::vector<UnstartableRun>> FailUnstartableRuns();
  // OK when `init` names nothing or something that exists: a run (any state) or an artifact.
  // InvalidArgument naming init.from_run / init.from_artifact otherwise. For submission.
  absl::Status CheckInitExists(const v1::InitSpec& init);

 private:
  explicit Store(std::unique_ptr<PgPool> pool);
  std::unique_ptr<PgPool> pool_;
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_STORE_H_
