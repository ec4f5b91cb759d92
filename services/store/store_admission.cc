// The store's half of admission: the scheduling cycle's decisions persisted in one statement
// (AdmitRuns), admissions nobody leased sent back (RequeueStaleAdmissions), and the projects'
// quotas and weights. Which run is admitted where is decided in scheduler/admission.cc.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/preemption_sql.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {

using internal::EpochSeconds;

absl::StatusOr<std::vector<int64_t>> Store::AdmitRuns(const std::vector<AdmissionGrant>& grants,
                                                      absl::Time now) {
  std::vector<int64_t> admitted;
  if (grants.empty()) return admitted;
  std::vector<int64_t> run_ids;
  std::vector<int64_t> worker_ids;
  std::vector<std::string> gpu_lists;
  std::vector<int64_t> cpu_slots;
  run_ids.reserve(grants.size());
  worker_ids.reserve(grants.size());
  gpu_lists.reserve(grants.size());
  cpu_slots.reserve(grants.size());
  // Gangs: rank 0's grant is the run's (the statement below); every rank's, rank 0's included,
  // also goes to run_ranks, in the same transaction.
  std::set<int64_t> gang_ids;
  for (const AdmissionGrant& grant : grants) {
    if (grant.rank > 0) gang_ids.insert(grant.run_id);
  }
  std::vector<int64_t> rank_run_ids;
  std::vector<int64_t> rank_numbers;
  std::vector<int64_t> rank_workers;
  std::vector<std::string> rank_gpus;
  std::vector<int64_t> rank_slots;
  for (const AdmissionGrant& grant : grants) {
    if (gang_ids.count(grant.run_id) > 0) {
      rank_run_ids.push_back(grant.run_id);
      rank_numbers.push_back(grant.rank);
      rank_workers.push_back(grant.worker_id);
      rank_gpus.push_back(absl::StrJoin(grant.gpu_indices, ","));
      rank_slots.push_back(grant.cpu_slots);
    }
    if (grant.rank != 0) continue;
    run_ids.push_back(grant.run_id);
    worker_ids.push_back(grant.worker_id);
    gpu_lists.push_back(absl::StrJoin(grant.gpu_indices, ","));
    cpu_slots.push_back(grant.cpu_slots);
  }
  const std::string run_array = internal::Int64ArrayLiteral(run_ids);
  const std::string worker_array = internal::Int64ArrayLiteral(worker_ids);
  const std::string gpu_array = internal::TextArrayLiteral(gpu_lists);
  const std::string slot_array = internal::Int64ArrayLiteral(cpu_slots);
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    admitted.clear();  // a retried transaction starts over
    // One statement for the whole batch: the decisions and their transition rows. Rows are
    // locked in run id order (the order CancelSweep locks in), so the two cannot deadlock.
    pqxx::result rows = txn.exec_params(
        "WITH d AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[]) "
        "             AS d(run_id, worker_id, gpus, slots)), "
        "locked AS (SELECT r.id FROM runs r JOIN d ON d.run_id = r.id "
        "           WHERE r.state = 'PENDING' ORDER BY r.id FOR UPDATE OF r SKIP LOCKED), "
        "u AS (UPDATE runs r SET state = 'ADMITTED', admitted_worker_id = d.worker_id, "
        "        admitted_gpu_indices = string_to_array(d.gpus, ',')::int[], "
        "        admitted_cpu_slots = d.slots, admitted_at = to_timestamp($5), "
        "        updated_at = now() "
        "      FROM d, locked WHERE r.id = d.run_id AND r.id = locked.id "
        "      RETURNING r.id, r.attempt, d.worker_id, d.gpus) "
        "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
        "SELECT id, attempt, 'PENDING', 'ADMITTED', 'admitted to worker ' || worker_id || "
        "  CASE WHEN gpus <> '' THEN ' on GPUs ' || gpus ELSE '' END FROM u RETURNING run_id",
        run_array, worker_array, gpu_array, slot_array, EpochSeconds(now));
    admitted.reserve(rows.size());
    for (const auto& row : rows) admitted.push_back(row[0].as<int64_t>());
    if (rank_run_ids.empty()) return absl::OkStatus();
    // Every rank of the gangs just admitted (a gang skipped above gets none). The attempt is the
    // one its lease will start; a row left by an admission that went stale is overwritten.
    txn.exec_params(
        "INSERT INTO run_ranks (run_id, attempt, rank, worker_id, gpu_indices, cpu_slots, state) "
        "SELECT d.run_id, r.attempt + 1, d.rank, d.worker_id, "
        "  string_to_array(d.gpus, ',')::int[], d.slots, 'ADMITTED' "
        "FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $5::int[]) "
        "  AS d(run_id, rank, worker_id, gpus, slots) "
        "JOIN runs r ON r.id = d.run_id WHERE d.run_id = ANY($6::bigint[]) "
        "ON CONFLICT (run_id, attempt, rank) DO UPDATE SET worker_id = EXCLUDED.worker_id, "
        "  gpu_indices = EXCLUDED.gpu_indices, cpu_slots = EXCLUDED.cpu_slots, "
        "  state = 'ADMITTED', lease_expires_at = NULL, leased_at = NULL, ended_at = NULL, "
        "  exit_code = NULL, message = ''",
        internal::Int64ArrayLiteral(rank_run_ids), internal::Int64ArrayLiteral(rank_numbers),
        internal::Int64ArrayLiteral(rank_workers), internal::TextArrayLiteral(rank_gpus),
        internal::Int64ArrayLiteral(rank_slots), internal::Int64ArrayLiteral(admitted));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return admitted;
}

absl::StatusOr<int> Store::RequeueStaleAdmissions(absl::Time now, absl::Duration timeout) {
  int requeued = 0;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    // Preemption hook: a preemptor's clock starts when its last victim ended (AdmissionClockSql).
    pqxx::result rows = txn.exec_params(
        // A gang goes back as a whole when any of its ranks' workers is no longer alive; its
        // rank grants go with it (they never became an attempt).
        "WITH stale AS (SELECT r.id, r.admitted_worker_id AS worker_id FROM runs r "
        "  LEFT JOIN workers w ON w.id = r.admitted_worker_id "
        "  WHERE r.state = 'ADMITTED' AND (" +
            internal::AdmissionClockSql("r") +
            " < to_timestamp($1) "
            "        OR w.state IS DISTINCT FROM 'ALIVE' "
            "        OR EXISTS (SELECT 1 FROM run_ranks rr JOIN workers rw ON rw.id = rr.worker_id "
            "                   WHERE rr.run_id = r.id AND rr.attempt = r.attempt + 1 "
            "                   AND rw.state <> 'ALIVE')) "
            "  ORDER BY r.id FOR UPDATE OF r SKIP LOCKED), "
            "ranks AS (DELETE FROM run_ranks rr USING stale, runs r WHERE rr.run_id = stale.id "
            "          AND r.id = stale.id AND rr.attempt = r.attempt + 1 "
            "          AND rr.state = 'ADMITTED'), "
            "u AS (UPDATE runs r SET state = 'PENDING', admitted_worker_id = NULL, "
            "        admitted_gpu_indices = NULL, admitted_cpu_slots = NULL, admitted_at = NULL, "
            "        updated_at = now() FROM stale WHERE r.id = stale.id "
            "      RETURNING r.id, r.attempt, stale.worker_id) "
            "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
            "SELECT id, attempt, 'ADMITTED', 'PENDING', 'worker ' || worker_id || "
            "  ' did not lease its admission within ' || $2 || ' s, or a worker it was admitted to "
            "is no longer alive' FROM u "
            "RETURNING run_id",
        EpochSeconds(now - timeout), absl::StrCat(absl::ToDoubleSeconds(timeout)));
    requeued = static_cast<int>(rows.size());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return requeued;
}

absl::Status Store::SetProjectPolicy(const std::string& name, int gpu_quota, double weight) {
  if (name.empty()) return absl::InvalidArgumentError("project: expected a name, got \"\"");
  if (gpu_quota < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("gpu_quota of project ", name, ": expected >= 0, got ", gpu_quota));
  }
  if (!(weight > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight of project ", name, ": expected > 0, got ", weight));
  }
  return pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    txn.exec_params(
        "INSERT INTO projects (name, gpu_quota, weight) VALUES ($1, $2, $3) "
        "ON CONFLICT (name) DO UPDATE SET gpu_quota = EXCLUDED.gpu_quota, "
        "weight = EXCLUDED.weight",
        name, gpu_quota, weight);
    return absl::OkStatus();
  });
}

absl::StatusOr<std::map<std::string, int64_t>> Store::PendingByPriority() {
  std::map<std::string, int64_t> counts;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    counts = {{"low", 0}, {"normal", 0}, {"high", 0}, {"critical", 0}};
    for (const auto& row :
         txn.exec("SELECT s.priority, count(*) FROM runs r JOIN sweeps s ON s.id = r.sweep_id "
                  "WHERE r.state = 'PENDING' GROUP BY s.priority")) {
      counts[row[0].as<std::string>()] = row[1].as<int64_t>();
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return counts;
}

}  // namespace scalelab::services
