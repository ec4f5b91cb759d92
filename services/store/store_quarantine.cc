// Worker failure statistics and quarantine: the facts scheduler/quarantine.h decides on and the
// persistence of its decisions. Which worker stands out is the scheduler's decision, not SQL's.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {

using internal::EpochSeconds;

absl::StatusOr<std::vector<WorkerFailureStats>> Store::ListWorkerFailureStats(absl::Time since) {
  std::vector<WorkerFailureStats> stats;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    stats.clear();  // a retried transaction starts over
    // One statement; the count is served by run_attempts_failures_idx (worker, ended_at).
    pqxx::result rows = txn.exec_params(
        "SELECT w.id, w.state, w.healthy_streak, extract(epoch FROM w.quarantined_at)::float8, "
        "(SELECT count(*) FROM run_attempts a WHERE a.worker_id = w.id "
        "  AND a.ended_at > to_timestamp($1) AND a.failure_class IN ('SYSTEM_SOFTWARE', "
        "  'HARDWARE_TRANSIENT', 'HARDWARE_PERMANENT', 'NODE_LOST', 'OUT_OF_MEMORY')) "
        "FROM workers w WHERE w.state IN ('ALIVE', 'QUARANTINED') ORDER BY w.id",
        EpochSeconds(since));
    stats.reserve(rows.size());
    for (const auto& row : rows) {
      WorkerFailureStats worker;
      worker.worker_id = row[0].as<int64_t>();
      worker.state = row[1].as<std::string>();
      worker.healthy_streak = row[2].as<int>();
      if (!row[3].is_null()) worker.quarantined_at = internal::TimeFromEpoch(row[3].as<double>());
      worker.infra_failures = row[4].as<int>();
      stats.push_back(worker);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return stats;
}

absl::StatusOr<bool> Store::QuarantineWorker(int64_t worker_id, const std::string& reason,
                                             absl::Time now) {
  bool changed = false;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    // The streak restarts: release needs N passing heartbeats after the quarantine began.
    changed =
        !txn.exec_params(
                "UPDATE workers SET state = 'QUARANTINED', quarantined_at = to_timestamp($2), "
                "healthy_streak = 0 WHERE id = $1 AND state = 'ALIVE' RETURNING id",
                worker_id, EpochSeconds(now))
             .empty();
    if (changed) {
      txn.exec_params(
          "INSERT INTO quarantine_events (worker_id, event, reason, at) "
          "VALUES ($1, 'QUARANTINED', $2, to_timestamp($3))",
          worker_id, reason, EpochSeconds(now));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return changed;
}

absl::StatusOr<bool> Store::ReleaseWorker(int64_t worker_id, const std::string& reason) {
  bool changed = false;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    changed = !txn.exec_params(
                      "UPDATE workers SET state = 'ALIVE', quarantined_at = NULL "
                      "WHERE id = $1 AND state = 'QUARANTINED' RETURNING id",
                      worker_id)
                   .empty();
    if (changed) {
      txn.exec_params(
          "INSERT INTO quarantine_events (worker_id, event, reason) VALUES ($1, 'RELEASED', $2)",
          worker_id, reason);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return changed;
}

absl::StatusOr<std::vector<QuarantineEvent>> Store::ListQuarantineEvents(int64_t worker_id) {
  std::vector<QuarantineEvent> events;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    events.clear();  // a retried transaction starts over
    pqxx::result rows = txn.exec_params(
        "SELECT worker_id, event, reason, extract(epoch FROM at)::float8 FROM quarantine_events "
        "WHERE $1 = 0 OR worker_id = $1 ORDER BY id",
        worker_id);
    for (const auto& row : rows) {
      events.push_back({row[0].as<int64_t>(), row[1].as<std::string>(), row[2].as<std::string>(),
                        internal::TimeFromEpoch(row[3].as<double>())});
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return events;
}

}  // namespace scalelab::services
