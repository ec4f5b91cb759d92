// The results store: sweeps, runs, attempts, transitions, metric points and workers in
// PostgreSQL (schema in migrations/). Every run state change is written, together with a
// run_transitions row, in the same transaction as the decision that caused it, so a restarted
// scheduler continues where it stopped.
//
// Thread-safe: every method takes a pooled connection for one transaction.
// Errors: Unavailable when PostgreSQL cannot be reached (retry the call), NotFound for unknown
// ids, FailedPrecondition when a report names an attempt that is no longer current, Internal
// for anything the database refused unexpectedly.
#ifndef SCALELAB_SERVICES_STORE_H_
#define SCALELAB_SERVICES_STORE_H_

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
#include "services/pg_pool.h"

namespace scalelab::services {

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

struct ReportMetricsResult {
  int stored = 0;           // points new to the store
  double tokens_added = 0;  // growth of the run's trained tokens through this report
};

struct StoreCounts {
  std::map<std::string, int64_t> runs_by_state;     // "PENDING" -> n
  std::map<std::string, int64_t> workers_by_state;  // "ALIVE" -> n
};

class Store {
 public:
  // Connects, checks the server answers and (by default) applies pending migrations.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);

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
  // sweep_id 0 = every sweep; state UNSPECIFIED = any.
  absl::StatusOr<std::vector<v1::Run>> ListRuns(int64_t sweep_id, v1::RunState state, int limit);
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
  // Leases up to max_runs PENDING runs (oldest sweep first, then run index) to the worker,
  // starting a new attempt for each. FailedPrecondition when the worker is unknown or LOST.
  absl::StatusOr<std::vector<v1::Lease>> LeaseRuns(int64_t worker_id, int max_runs, absl::Time now,
                                                   absl::Duration lease_ttl);
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

 private:
  explicit Store(std::unique_ptr<PgPool> pool);
  std::unique_ptr<PgPool> pool_;
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_H_
