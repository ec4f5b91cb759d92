// The store's half of preemption: the facts the policy decides on (ReadPreemptionState), the
// persistence of its decisions (RequestPreemptions), what a victim's worker is told
// (PreemptionsForWorker / the heartbeat hook) and the hooks that keep a preemptor's admission
// from being leased, requeued or counted twice while its victims checkpoint
// (internal/preemption_sql.h). Which runs are evicted is decided in scheduler/preemption.cc.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/common/run_state.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/preemption_sql.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {

using internal::EpochSeconds;
using internal::TimeFromEpoch;

namespace {

absl::StatusOr<std::vector<int>> ParseGpuList(const pqxx::field& field, absl::string_view what) {
  std::vector<int> indices;
  if (field.is_null()) return indices;
  for (absl::string_view part : absl::StrSplit(field.c_str(), ',', absl::SkipEmpty())) {
    int index = 0;
    if (!absl::SimpleAtoi(part, &index)) {
      return absl::InternalError(absl::StrCat(what, ": bad element \"", part, "\""));
    }
    indices.push_back(index);
  }
  return indices;
}

absl::Time TimeOrPast(const pqxx::field& field) {
  return field.is_null() ? absl::InfinitePast() : TimeFromEpoch(field.as<double>());
}

// 'requested' -> 'done' for every preemption whose victim attempt has ended.
void SettleEndedVictims(pqxx::work& txn) {
  txn.exec(
      "UPDATE preemptions p SET state = 'done', victim_ended_at = a.ended_at "
      "FROM run_attempts a WHERE p.state = 'requested' AND a.run_id = p.victim_run_id "
      "AND a.attempt = p.victim_attempt AND a.ended_at IS NOT NULL");
}

}  // namespace

namespace internal {

std::string NoVictimRunningSql(absl::string_view run_alias) {
  return absl::StrCat(
      "NOT EXISTS (SELECT 1 FROM preemptions p JOIN run_attempts va ON va.run_id = "
      "p.victim_run_id AND va.attempt = p.victim_attempt WHERE p.preemptor_run_id = ",
      run_alias, ".id AND p.state = 'requested' AND va.ended_at IS NULL)");
}

std::string AdmissionClockSql(absl::string_view run_alias) {
  // No rows (not a preemptor): bool_or is NULL, so the ELSE branch, and greatest() ignores the
  // NULL max: admitted_at. Rows of an earlier admission of the same run are older than it.
  return absl::StrCat(
      "(SELECT CASE WHEN bool_or(va.ended_at IS NULL) THEN NULL ELSE greatest(", run_alias,
      ".admitted_at, max(va.ended_at)) END FROM preemptions p JOIN run_attempts va ON "
      "va.run_id = p.victim_run_id AND va.attempt = p.victim_attempt WHERE p.preemptor_run_id = ",
      run_alias, ".id AND p.requested_at >= ", run_alias, ".admitted_at)");
}

absl::Status DiscountPreemptorHolds(pqxx::work& txn, std::vector<StoredWorker>* workers) {
  pqxx::result rows = txn.exec(
      "SELECT p.preemptor_run_id, a.worker_id, array_to_string(a.gpu_indices, ','), a.cpu_slots "
      "FROM preemptions p JOIN run_attempts a ON a.run_id = p.victim_run_id "
      "AND a.attempt = p.victim_attempt AND a.ended_at IS NULL "
      "JOIN runs r ON r.id = p.preemptor_run_id AND r.state = 'ADMITTED' "
      "AND r.admitted_worker_id = a.worker_id WHERE p.state = 'requested'");
  for (const auto& row : rows) {
    const int64_t preemptor = row[0].as<int64_t>();
    const int64_t worker_id = row[1].as<int64_t>();
    auto gpus = ParseGpuList(row[2], "run_attempts.gpu_indices");
    if (!gpus.ok()) return gpus.status();
    const int slots = row[3].as<int>();
    for (StoredWorker& worker : *workers) {
      if (worker.worker_id != worker_id) continue;
      for (HeldResources& held : worker.held) {
        if (held.run_id != preemptor) continue;
        held.gpu_indices.erase(std::remove_if(held.gpu_indices.begin(), held.gpu_indices.end(),
                                              [&](int index) {
                                                return std::find(gpus->begin(), gpus->end(),
                                                                 index) != gpus->end();
                                              }),
                               held.gpu_indices.end());
        held.cpu_slots = std::max(0, held.cpu_slots - slots);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status AppendPreemptionsOf(pqxx::work& txn, int64_t worker_id,
                                 std::vector<v1::RunAttempt>* preempt) {
  pqxx::result rows = txn.exec_params(
      "SELECT p.victim_run_id, p.victim_attempt, r.lease_token FROM preemptions p "
      "JOIN runs r ON r.id = p.victim_run_id AND r.attempt = p.victim_attempt "
      "AND r.state IN ('LEASED', 'RUNNING') AND r.worker_id = $1 "
      "WHERE p.state = 'requested' AND p.worker_id = $1 ORDER BY p.victim_run_id",
      worker_id);
  for (const auto& row : rows) {
    v1::RunAttempt& attempt = preempt->emplace_back();
    attempt.set_run_id(row[0].as<int64_t>());
    attempt.set_attempt(row[1].as<int32_t>());
    attempt.set_lease_token(row[2].as<int64_t>());
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::StatusOr<StoredPreemptionState> Store::ReadPreemptionState(
    const std::vector<std::string>& victim_classes) {
  StoredPreemptionState state;
  if (victim_classes.empty()) return state;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    state = StoredPreemptionState();  // a retried transaction starts over
    SettleEndedVictims(txn);
    pqxx::result running = txn.exec_params(
        "SELECT r.id, r.attempt, r.sweep_id, r.worker_id, s.priority, "
        "  array_to_string(a.gpu_indices, ','), a.cpu_slots, "
        "  extract(epoch from a.started_at)::float8, "
        "  (SELECT extract(epoch from max(ar.created_at))::float8 FROM artifacts ar "
        "   WHERE ar.run_id = r.id AND ar.kind = 'checkpoint'), "
        "  (SELECT extract(epoch from max(p.requested_at))::float8 FROM preemptions p "
        "   WHERE p.victim_run_id = r.id), "
        "  EXISTS (SELECT 1 FROM preemptions p WHERE p.victim_run_id = r.id "
        "          AND p.victim_attempt = r.attempt AND p.state = 'requested') "
        "FROM runs r JOIN run_attempts a ON a.run_id = r.id AND a.attempt = r.attempt "
        "JOIN sweeps s ON s.id = r.sweep_id JOIN workers w ON w.id = r.worker_id "
        "WHERE r.state IN ('LEASED', 'RUNNING') AND w.state IN ('ALIVE', 'QUARANTINED') "
        "AND s.priority = ANY($1::text[]) ORDER BY r.id",
        internal::TextArrayLiteral(victim_classes));
    state.running.reserve(running.size());
    for (const auto& row : running) {
      StoredRunningAttempt attempt;
      attempt.run_id = row[0].as<int64_t>();
      attempt.attempt = row[1].as<int32_t>();
      attempt.sweep_id = row[2].as<int64_t>();
      attempt.worker_id = row[3].as<int64_t>();
      attempt.priority = row[4].as<std::string>();
      auto gpus = ParseGpuList(row[5], "run_attempts.gpu_indices");
      if (!gpus.ok()) return gpus.status();
      attempt.gpu_indices = *std::move(gpus);
      attempt.cpu_slots = row[6].as<int>();
      attempt.started_at = TimeOrPast(row[7]);
      attempt.last_checkpoint_at = TimeOrPast(row[8]);
      attempt.last_preempted_at = TimeOrPast(row[9]);
      attempt.preempt_requested = row[10].as<bool>();
      state.running.push_back(std::move(attempt));
    }
    pqxx::result preemptors = txn.exec(
        "SELECT r.id, r.admitted_worker_id, array_to_string(r.admitted_gpu_indices, ','), "
        "r.admitted_cpu_slots FROM runs r WHERE r.state = 'ADMITTED' AND EXISTS (SELECT 1 FROM "
        "preemptions p WHERE p.preemptor_run_id = r.id AND p.state = 'requested') ORDER BY r.id");
    for (const auto& row : preemptors) {
      StoredInFlightPreemptor preemptor;
      preemptor.run_id = row[0].as<int64_t>();
      preemptor.worker_id = row[1].as<int64_t>();
      auto gpus = ParseGpuList(row[2], "runs.admitted_gpu_indices");
      if (!gpus.ok()) return gpus.status();
      preemptor.gpu_indices = *std::move(gpus);
      preemptor.cpu_slots = row[3].as<int>();
      state.in_flight.push_back(std::move(preemptor));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return state;
}

absl::StatusOr<std::vector<int64_t>> Store::RequestPreemptions(
    const std::vector<PreemptionRequest>& requests, absl::Time now) {
  std::vector<int64_t> admitted;
  if (requests.empty()) return admitted;
  std::vector<int64_t> run_ids;
  for (const PreemptionRequest& request : requests) {
    if (request.victims.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("preemption for run ",
                                                     request.preemptor_run_id,
                                                     ": expected at least one victim, got none"));
    }
    run_ids.push_back(request.preemptor_run_id);
    for (const PreemptionRequest::Victim& victim : request.victims)
      run_ids.push_back(victim.run_id);
  }
  std::sort(run_ids.begin(), run_ids.end());
  run_ids.erase(std::unique(run_ids.begin(), run_ids.end()), run_ids.end());
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    admitted.clear();  // a retried transaction starts over
    // Every run of the batch locked at once in run id order (CancelSweep's order: no deadlock).
    struct Locked {
      std::string state;
      int32_t attempt = 0;
      bool victim_taken = false;  // already has a preemption row for its current attempt
    };
    std::map<int64_t, Locked> locked;
    for (const auto& row : txn.exec_params(
             "SELECT r.id, r.state, r.attempt, EXISTS (SELECT 1 FROM preemptions p WHERE "
             "p.victim_run_id = r.id AND p.victim_attempt = r.attempt) FROM runs r "
             "WHERE r.id = ANY($1::bigint[]) ORDER BY r.id FOR UPDATE OF r",
             internal::Int64ArrayLiteral(run_ids))) {
      locked[row[0].as<int64_t>()] =
          Locked{row[1].as<std::string>(), row[2].as<int32_t>(), row[3].as<bool>()};
    }
    for (const PreemptionRequest& request : requests) {
      auto preemptor = locked.find(request.preemptor_run_id);
      if (preemptor == locked.end() || preemptor->second.state != "PENDING") continue;
      bool victims_current = true;
      for (const PreemptionRequest::Victim& victim : request.victims) {
        auto found = locked.find(victim.run_id);
        victims_current &= found != locked.end() &&
                           (found->second.state == "LEASED" || found->second.state == "RUNNING") &&
                           found->second.attempt == victim.attempt && !found->second.victim_taken;
      }
      if (!victims_current) continue;  // a victim ended or moved on: the next pass decides again

      std::vector<std::string> victim_names;
      for (const PreemptionRequest::Victim& victim : request.victims) {
        victim_names.push_back(absl::StrCat(victim.run_id));
      }
      txn.exec_params(
          "UPDATE runs SET state = 'ADMITTED', admitted_worker_id = $2, "
          "admitted_gpu_indices = $3::int[], admitted_cpu_slots = $4, "
          "admitted_at = to_timestamp($5), updated_at = now() WHERE id = $1",
          request.preemptor_run_id, request.worker_id,
          absl::StrCat("{", absl::StrJoin(request.gpu_indices, ","), "}"), request.cpu_slots,
          EpochSeconds(now));
      std::string reason = absl::StrCat("admitted to worker ", request.worker_id);
      if (!request.gpu_indices.empty()) {
        absl::StrAppend(&reason, " on GPUs ", absl::StrJoin(request.gpu_indices, ","));
      }
      absl::StrAppend(&reason, ", preempting run", request.victims.size() == 1 ? " " : "s ",
                      absl::StrJoin(victim_names, ", "), ": ", request.reason);
      internal::RecordTransition(txn, request.preemptor_run_id, preemptor->second.attempt,
                                 v1::RUN_STATE_PENDING, v1::RUN_STATE_ADMITTED, reason);
      for (const PreemptionRequest::Victim& victim : request.victims) {
        txn.exec_params(
            "INSERT INTO preemptions (preemptor_run_id, victim_run_id, victim_attempt, worker_id, "
            "reason, requested_at) VALUES ($1, $2, $3, $4, $5, to_timestamp($6))",
            request.preemptor_run_id, victim.run_id, victim.attempt, request.worker_id,
            request.reason, EpochSeconds(now));
        locked[victim.run_id].victim_taken = true;
      }
      preemptor->second.state = "ADMITTED";
      admitted.push_back(request.preemptor_run_id);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return admitted;
}

absl::StatusOr<std::vector<v1::RunAttempt>> Store::PreemptionsForWorker(int64_t worker_id) {
  std::vector<v1::RunAttempt> preempt;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    preempt.clear();
    return internal::AppendPreemptionsOf(txn, worker_id, &preempt);
  });
  if (!status.ok()) return status;
  return preempt;
}

absl::StatusOr<std::vector<PreemptionRecord>> Store::ListPreemptions(bool in_flight_only,
                                                                     int limit) {
  std::vector<PreemptionRecord> records;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    records.clear();
    SettleEndedVictims(txn);
    for (const auto& row : txn.exec_params(
             "SELECT id, preemptor_run_id, victim_run_id, victim_attempt, worker_id, reason, "
             "state, extract(epoch from requested_at)::float8, "
             "extract(epoch from victim_ended_at)::float8 FROM preemptions "
             "WHERE NOT $1::bool OR state = 'requested' ORDER BY id DESC LIMIT $2",
             in_flight_only, limit)) {
      PreemptionRecord record;
      record.id = row[0].as<int64_t>();
      record.preemptor_run_id = row[1].as<int64_t>();
      record.victim_run_id = row[2].as<int64_t>();
      record.victim_attempt = row[3].as<int32_t>();
      record.worker_id = row[4].as<int64_t>();
      record.reason = row[5].as<std::string>();
      record.state = row[6].as<std::string>();
      record.requested_at = TimeFromEpoch(row[7].as<double>());
      record.victim_ended_at = TimeOrPast(row[8]);
      records.push_back(std::move(record));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return records;
}

}  // namespace scalelab::services
