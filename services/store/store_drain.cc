// A worker that stops: DRAINING, and its admitted-but-not-leased runs back to PENDING.
#include <string>

#include "absl/strings/str_cat.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/store.h"

namespace scalelab::services {

absl::StatusOr<int> Store::DrainWorker(int64_t worker_id, const std::string& reason) {
  int requeued = 0;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    requeued = 0;  // a retried transaction starts over
    pqxx::result worker = txn.exec_params(
        "UPDATE workers SET state = CASE WHEN state IN ('ALIVE', 'QUARANTINED') THEN 'DRAINING' "
        "ELSE state END WHERE id = $1 RETURNING state",
        worker_id);
    if (worker.empty()) {
      return absl::NotFoundError(absl::StrCat("worker_id: no worker ", worker_id));
    }
    // The same statement shape as RequeueStaleAdmissions, for one worker's admissions.
    pqxx::result rows = txn.exec_params(
        "WITH drained AS (SELECT r.id FROM runs r WHERE r.state = 'ADMITTED' "
        "  AND r.admitted_worker_id = $1 ORDER BY r.id FOR UPDATE OF r), "
        "u AS (UPDATE runs r SET state = 'PENDING', admitted_worker_id = NULL, "
        "        admitted_gpu_indices = NULL, admitted_cpu_slots = NULL, admitted_at = NULL, "
        "        updated_at = now() FROM drained WHERE r.id = drained.id "
        "      RETURNING r.id, r.attempt) "
        "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
        "SELECT id, attempt, 'ADMITTED', 'PENDING', 'worker ' || $1 || ' is draining' || "
        "  CASE WHEN $2 <> '' THEN ' (' || $2 || ')' ELSE '' END FROM u "
        "RETURNING run_id",
        worker_id, reason);
    requeued = static_cast<int>(rows.size());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return requeued;
}

}  // namespace scalelab::services
