// Workers, heartbeats, attempt completion and lease expiry: the write path of running sweeps.
// Leases are granted in store_placement.cc, metric points ingested in store_ingest.cc.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/run_state.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/preemption_sql.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {

using internal::EpochSeconds;
using internal::kRunColumns;
using internal::kRunFrom;
using internal::RecordTransition;
using internal::RefreshSweepState;
using internal::RunFromRow;

namespace {

// Locks the sweep of a run. Every transaction that may change a sweep's state locks the sweep
// before its runs (CancelSweep does the same), so two runs ending together serialize on the
// sweep and the second one's RefreshSweepState sees the first one's result.
absl::Status LockSweepOfRun(pqxx::work& txn, int64_t run_id) {
  pqxx::result rows = txn.exec_params(
      "SELECT s.id FROM sweeps s JOIN runs r ON r.sweep_id = s.id WHERE r.id = $1 "
      "FOR UPDATE OF s",
      run_id);
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
  return absl::OkStatus();
}

// Selected after kRunColumns where a retry is decided: the retry counts, then the lease token.
constexpr char kRetryColumns[] = ", r.infra_retries, r.oom_retries, r.lease_token";
RetryCounts RetryCountsFromRow(const pqxx::row& row) {
  const auto size = static_cast<pqxx::row::size_type>(row.size());
  return {row[size - 3].as<int>(), row[size - 2].as<int>()};
}

// Loads the run and locks it for the rest of the transaction, then checks the report's lease
// token (fencing) and that `attempt` held by `worker_id` is its current attempt. Returns the run
// and its retry counts, or FailedPrecondition when a newer attempt (or no lease) owns it.

absl::StatusOr<v1::Run> LockCurrentAttempt(pqxx::work& txn, int64_t run_id, int32_t attempt,
                                           int64_t worker_id, int64_t lease_token,
                                           RetryCounts* counts) {
  pqxx::result rows = txn.exec_params(absl::StrCat("SELECT ", kRunColumns, kRetryColumns, " FROM ",
                                                   kRunFrom, " WHERE r.id = $1 FOR UPDATE OF r"),
                                      run_id);
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
  auto run = RunFromRow(rows[0]);
  if (!run.ok()) return run;
  *counts = RetryCountsFromRow(rows[0]);
  const int64_t current_token = rows[0][rows[0].size() - 1].as<int64_t>();
  if (absl::Status fenced = internal::CheckLeaseToken(run_id, lease_token, current_token);
      !fenced.ok()) {
    return fenced;
  }
  // worker_id 0 stands for "no worker" in RunFromRow, so it can never own an attempt.
  if (worker_id <= 0 || run->attempt() != attempt || run->worker_id() != worker_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " attempt ", attempt, " on worker ", worker_id,
                     " is not current (current: attempt ", run->attempt(), " on worker ",
                     run->worker_id(), ", state ", RunStateName(run->state()), ")"));
  }
  return run;
}

void CloseAttempt(pqxx::work& txn, int64_t run_id, int32_t attempt, v1::RunState end_state,
                  int exit_code, int term_signal, v1::FailureClass failure_class,
                  const std::string& message, const std::string& evidence) {
  txn.exec_params(
      "UPDATE run_attempts SET state = $3, ended_at = now(), exit_code = $4, term_signal = $5, "
      "failure_class = $6, message = $7, evidence = $8 "
      "WHERE run_id = $1 AND attempt = $2 AND ended_at IS NULL",
      run_id, attempt, RunStateName(end_state), exit_code, term_signal,
      FailureClassName(failure_class), message, evidence);
}

// Persists the retry side of a decision: backoff, the avoided worker (`failed_worker_id`: the
// one whose rank failed or went silent) and the budget spent. The backoff counts from the
// database's clock, the clock kRetryReadySql compares with.
void ApplyRetryDecision(pqxx::work& txn, const v1::Run& run, const RetryDecision& decision,
                        const std::string& evidence, int64_t failed_worker_id) {
  const bool retry = decision.next == v1::RUN_STATE_PENDING;
  txn.exec_params(
      "UPDATE runs SET not_before = CASE WHEN $2::bool AND $3::float8 > 0 "
      "  THEN now() + make_interval(secs => $3::float8) END, "
      "avoid_workers = CASE WHEN $2::bool AND $4::bool AND $5::bigint > 0 "
      "  AND NOT ($5::bigint = ANY(avoid_workers)) "
      "  THEN avoid_workers || $5::bigint ELSE avoid_workers END, "
      "infra_retries = infra_retries + $6::int, oom_retries = oom_retries + $7::int, "
      "failure_evidence = $8 WHERE id = $1",
      run.id(), retry, absl::ToDoubleSeconds(decision.backoff), decision.avoid_worker,
      failed_worker_id, retry && decision.spends == RetryDecision::Budget::kInfra ? 1 : 0,
      retry && decision.spends == RetryDecision::Budget::kOom ? 1 : 0, evidence);
}

std::string Reason(const std::string& base, const RetryDecision& decision) {
  return decision.why.empty() ? base : absl::StrCat(base, " (", decision.why, ")");
}

// What an attempt used, as its worker measured it. A report without figures (an older worker)
// leaves the attempt's zeros.
void RecordEnergy(pqxx::work& txn, int64_t run_id, int32_t attempt,
                  const v1::EnergyReport& energy) {
  if (energy.ByteSizeLong() == 0) return;
  txn.exec_params(
      "UPDATE run_attempts SET energy_j = $3, energy_source = $4, device_seconds = $5, "
      "device_kind = $6, devices = $7 WHERE run_id = $1 AND attempt = $2",
      run_id, attempt, energy.energy_j(), energy.source(), energy.device_seconds(),
      energy.device_kind(), energy.devices());
}

// Gangs. Loads and locks the run like LockCurrentAttempt, for a report of rank `rank` > 0: the
// lease token must be the run's, `attempt` its current one, and the rank's grant (run_ranks)
// `worker_id`'s. Sets `rank_state` to the rank's state ("LEASED" while it runs).
absl::StatusOr<v1::Run> LockGangRank(pqxx::work& txn, int64_t run_id, int32_t attempt, int rank,
                                     int64_t worker_id, int64_t lease_token, RetryCounts* counts,
                                     std::string* rank_state) {
  pqxx::result rows = txn.exec_params(absl::StrCat("SELECT ", kRunColumns, kRetryColumns, " FROM ",
                                                   kRunFrom, " WHERE r.id = $1 FOR UPDATE OF r"),
                                      run_id);
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
  auto run = RunFromRow(rows[0]);
  if (!run.ok()) return run;
  *counts = RetryCountsFromRow(rows[0]);
  const int64_t current_token = rows[0][rows[0].size() - 1].as<int64_t>();
  if (absl::Status fenced = internal::CheckLeaseToken(run_id, lease_token, current_token);
      !fenced.ok()) {
    return fenced;
  }
  pqxx::result grant = txn.exec_params(
      "SELECT worker_id, state FROM run_ranks WHERE run_id = $1 AND attempt = $2 AND rank = $3",
      run_id, attempt, rank);
  if (run->attempt() != attempt || grant.empty() || grant[0][0].as<int64_t>() != worker_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("run ", run_id, " attempt ", attempt, " rank ", rank, " on worker ", worker_id,
                     " is not current (current: attempt ", run->attempt(), ", state ",
                     RunStateName(run->state()), ")"));
  }
  *rank_state = grant[0][1].as<std::string>();
  return run;
}

// Ends `rank`'s grant of the attempt as `state` (SUCCEEDED or FAILED) and, when `attempt_ended`,
// every other rank still admitted or running as STOPPED: their workers are told to stop them at
// their next heartbeat. Touches nothing for a run of one rank (it has no run_ranks rows).
void EndRanks(pqxx::work& txn, int64_t run_id, int32_t attempt, int rank, const char* state,
              int exit_code, const std::string& message, bool attempt_ended) {
  txn.exec_params(
      "UPDATE run_ranks SET state = CASE WHEN rank = $3::int THEN $4::text ELSE 'STOPPED' END, "
      "ended_at = now(), exit_code = CASE WHEN rank = $3::int THEN $5::int END, "
      "message = CASE WHEN rank = $3::int THEN $6::text ELSE 'the attempt ended' END "
      "WHERE run_id = $1 AND attempt = $2 AND state IN ('ADMITTED', 'LEASED') "
      "AND (rank = $3::int OR $7::bool)",
      run_id, attempt, rank, state, exit_code, message, attempt_ended);
}

// Renews a gang rank's lease, then the run's as the earliest of its ranks still admitted or
// running, so the reaper (which reads runs.lease_expires_at) sees the gang lost when any one
// rank's worker stops heartbeating. The caller holds the run's row lock. False when the rank is
// not `worker_id`'s running grant of the attempt.
bool RenewGangRank(pqxx::work& txn, const v1::RunAttempt& held, int64_t worker_id,
                   absl::Time expires) {
  pqxx::result renewed = txn.exec_params(
      "UPDATE run_ranks SET lease_expires_at = to_timestamp($5) WHERE run_id = $1 "
      "AND attempt = $2 AND rank = $3 AND worker_id = $4 AND state = 'LEASED' RETURNING rank",
      held.run_id(), held.attempt(), held.rank(), worker_id, EpochSeconds(expires));
  if (renewed.empty()) return false;
  txn.exec_params(
      "UPDATE runs r SET lease_expires_at = COALESCE((SELECT min(rr.lease_expires_at) "
      "  FROM run_ranks rr WHERE rr.run_id = r.id AND rr.attempt = r.attempt "
      "  AND rr.state IN ('ADMITTED', 'LEASED')), r.lease_expires_at) WHERE r.id = $1",
      held.run_id());
  return true;
}

}  // namespace

absl::StatusOr<int64_t> Store::RegisterWorker(const v1::RegisterRequest& request) {
  int64_t worker_id = 0;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    worker_id = txn.exec_params1(
                       "INSERT INTO workers (name, hostname, cpu_slots, gpus, inventory, state) "
                       "VALUES ($1, $2, $3, $4, $5::jsonb, 'ALIVE') RETURNING id",
                       request.name(), request.hostname(), request.cpu_slots(), request.gpus_size(),
                       internal::ToJson(request))[0]
                    .as<int64_t>();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return worker_id;
}

absl::StatusOr<HeartbeatResult> Store::Heartbeat(int64_t worker_id,
                                                 const std::vector<v1::RunAttempt>& running,
                                                 absl::Time now, absl::Duration lease_ttl,
                                                 const std::vector<v1::HealthCheck>& health) {
  HeartbeatResult result;
  bool healthy = true;
  std::string health_message;
  for (const v1::HealthCheck& check : health) {
    if (check.ok()) continue;
    healthy = false;
    absl::StrAppend(&health_message, health_message.empty() ? "" : "; ", check.name(), ": ",
                    check.message());
  }
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    result = HeartbeatResult();  // a retried transaction starts over
    // Fencing: attempts listed with a token that is no longer their run's lease. Read before
    // anything else so a LOST worker's stale attempts are named too.
    // One statement for all of them.
    std::string run_ids;
    std::string tokens;
    for (const v1::RunAttempt& held : running) {
      if (held.lease_token() == 0) continue;
      absl::StrAppend(&run_ids, run_ids.empty() ? "" : ",", held.run_id());
      absl::StrAppend(&tokens, tokens.empty() ? "" : ",", held.lease_token());
    }
    if (!run_ids.empty()) {
      pqxx::result stale = txn.exec_params(
          "SELECT h.id, h.token, r.lease_token FROM unnest($1::bigint[], $2::bigint[]) AS h(id, "
          "token) JOIN runs r ON r.id = h.id WHERE r.lease_token <> h.token ORDER BY h.id",
          absl::StrCat("{", run_ids, "}"), absl::StrCat("{", tokens, "}"));
      for (const auto& row : stale) {
        result.fenced.emplace_back(internal::CheckLeaseToken(row[0].as<int64_t>(),
                                                             row[1].as<int64_t>(),
                                                             row[2].as<int64_t>())
                                       .message());
      }
    }
    pqxx::result updated = txn.exec_params(
        "UPDATE workers SET last_heartbeat_at = to_timestamp($2), health_ok = $3::bool, "
        "health_message = $4, "
        "healthy_streak = CASE WHEN $3::bool THEN healthy_streak + 1 ELSE 0 END "
        "WHERE id = $1 AND state IN ('ALIVE', 'QUARANTINED', 'DRAINING') RETURNING id",
        worker_id, EpochSeconds(now), healthy, health_message);
    if (updated.empty()) {
      // A LOST worker's runs were already requeued; whatever it still runs must stop.
      result.known = false;
      result.stop = running;
      return absl::OkStatus();
    }
    // Renewed in run id order, the order CancelSweep locks runs in, so the two cannot deadlock.
    // The run row is always locked before its gang ranks' rows, as everywhere else.
    std::vector<v1::RunAttempt> sorted = running;
    std::sort(sorted.begin(), sorted.end(), [](const v1::RunAttempt& a, const v1::RunAttempt& b) {
      return std::make_pair(a.run_id(), a.rank()) < std::make_pair(b.run_id(), b.rank());
    });
    for (const v1::RunAttempt& held : sorted) {
      if (held.rank() > 0) {
        // A gang's rank > 0: its own grant carries its lease.
        pqxx::result current = txn.exec_params(
            "SELECT id FROM runs WHERE id = $1 AND attempt = $2 AND state IN ('LEASED', "
            "'RUNNING') AND ($3::bigint = 0 OR lease_token = $3::bigint) FOR UPDATE",
            held.run_id(), held.attempt(), held.lease_token());
        if (current.empty() || !RenewGangRank(txn, held, worker_id, now + lease_ttl)) {
          result.stop.push_back(held);
        }
        continue;
      }
      pqxx::result renewed = txn.exec_params(
          "UPDATE runs SET lease_expires_at = to_timestamp($4) WHERE id = $1 AND attempt = $2 "
          "AND worker_id = $3 AND state IN ('LEASED', 'RUNNING') "
          "AND ($5::bigint = 0 OR lease_token = $5::bigint) "
          "RETURNING EXISTS (SELECT 1 FROM run_ranks rr WHERE rr.run_id = $1 AND rr.attempt = $2)",
          held.run_id(), held.attempt(), worker_id, EpochSeconds(now + lease_ttl),
          held.lease_token());
      if (renewed.empty()) {
        result.stop.push_back(held);
      } else if (renewed[0][0].as<bool>() &&
                 !RenewGangRank(txn, held, worker_id, now + lease_ttl)) {
        result.stop.push_back(held);  // a gang whose rank 0 already ended here
      }
    }
    // Preemption hook (store_preemption.cc): the victims this worker must checkpoint and stop.
    return internal::AppendPreemptionsOf(txn, worker_id, &result.preempt);
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<v1::RunState> Store::CompleteRun(const v1::CompleteRunRequest& request,
                                                const RetryDecider& decide) {
  v1::RunState next = v1::RUN_STATE_UNSPECIFIED;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    if (auto locked = LockSweepOfRun(txn, request.run_id()); !locked.ok()) return locked;
    RetryCounts counts;
    // Gangs: rank 0 reports the run as a run of one rank does; a rank > 0 is checked against
    // its own grant, and only its failure ends the attempt.
    const int rank = request.rank();
    std::string rank_state = "LEASED";
    auto run = rank > 0
                   ? LockGangRank(txn, request.run_id(), request.attempt(), rank,
                                  request.worker_id(), request.lease_token(), &counts, &rank_state)
                   : LockCurrentAttempt(txn, request.run_id(), request.attempt(),
                                        request.worker_id(), request.lease_token(), &counts);
    if (!run.ok()) return run.status();
    const char* rank_end = request.succeeded() ? "SUCCEEDED" : "FAILED";
    if (IsTerminal(run->state())) {
      // Cancelled while it ran: the worker stopped it. Only what the attempt used is still
      // worth recording (a re-sent completion writes the same figures again). The energy is
      // rank 0's: the attempt row holds one report.
      if (rank == 0) RecordEnergy(txn, run->id(), run->attempt(), request.energy());
      EndRanks(txn, run->id(), run->attempt(), rank, rank_end, request.exit_code(),
               request.message(), /*attempt_ended=*/false);
      next = run->state();
      return absl::OkStatus();
    }
    if (rank > 0 && rank_state != "LEASED") {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", run->id(), " attempt ", run->attempt(), " rank ", rank, " is ",
                       rank_state, ": the attempt ended (state ", RunStateName(run->state()), ")"));
    }
    if (rank > 0 && request.succeeded()) {
      // The run's outcome is rank 0's to report; this rank is done and frees its resources.
      EndRanks(txn, run->id(), run->attempt(), rank, rank_end, request.exit_code(), "",
               /*attempt_ended=*/false);
      next = run->state();
      return absl::OkStatus();
    }
    v1::FailureClass failure_class =
        request.succeeded() ? v1::FAILURE_CLASS_UNSPECIFIED : request.failure_class();
    RetryDecision decision = request.succeeded() ? RetryDecision(v1::RUN_STATE_SUCCEEDED)
                                                 : decide(*run, failure_class, counts);
    next = decision.next;
    if (!IsAllowedTransition(run->state(), next)) {
      return absl::InternalError(absl::StrCat("retry policy chose ", RunStateName(next), " from ",
                                              RunStateName(run->state())));
    }
    const std::string whose =
        rank > 0 ? absl::StrCat("rank ", rank, " on worker ", request.worker_id(), ": ") : "";
    std::string reason =
        request.succeeded()
            ? "trainer exited 0"
            : Reason(absl::StrCat(whose, FailureClassName(failure_class), ": ", request.message()),
                     decision);
    CloseAttempt(txn, run->id(), run->attempt(),
                 request.succeeded() ? v1::RUN_STATE_SUCCEEDED : v1::RUN_STATE_FAILED,
                 request.exit_code(), request.term_signal(), failure_class,
                 absl::StrCat(whose, request.message()), request.failure_evidence());
    if (!request.succeeded()) {
      ApplyRetryDecision(txn, *run, decision, request.failure_evidence(), request.worker_id());
    }
    if (rank == 0) RecordEnergy(txn, run->id(), run->attempt(), request.energy());
    // A failure ends every rank; after rank 0's success the others end on their own (or are
    // stopped by their heartbeat's answer) and report it.
    EndRanks(txn, run->id(), run->attempt(), rank, rank_end, request.exit_code(), request.message(),
             /*attempt_ended=*/!request.succeeded());
    RecordTransition(txn, run->id(), run->attempt(), run->state(), next, reason);
    txn.exec_params(
        "UPDATE runs SET exit_code = $2, failure_class = $3, message = $4, "
        "lease_expires_at = NULL, worker_id = CASE WHEN $5 THEN NULL ELSE worker_id END "
        "WHERE id = $1",
        run->id(), request.exit_code(), FailureClassName(failure_class),
        absl::StrCat(whose, request.message()), next == v1::RUN_STATE_PENDING);
    RefreshSweepState(txn, run->sweep_id());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return next;
}

absl::StatusOr<std::vector<ExpiredLease>> Store::ExpireLeases(absl::Time now,
                                                              absl::Duration worker_timeout,
                                                              const RetryDecider& decide) {
  std::vector<ExpiredLease> expired;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    expired.clear();  // a retried transaction starts over
    if (auto fenced = internal::CheckLeaderFence(txn, leader_fence()); !fenced.ok()) return fenced;
    // Sweeps before runs, in id order: the lock order of CompleteRun and CancelSweep.
    txn.exec_params(
        "SELECT id FROM sweeps WHERE id IN (SELECT sweep_id FROM runs "
        "WHERE state IN ('LEASED', 'RUNNING') AND lease_expires_at < to_timestamp($1)) "
        "ORDER BY id FOR UPDATE",
        EpochSeconds(now));
    txn.exec_params(
        "UPDATE workers SET state = 'LOST' WHERE state IN ('ALIVE', 'QUARANTINED', 'DRAINING') "
        "AND last_heartbeat_at < to_timestamp($1)",
        EpochSeconds(now - worker_timeout));
    pqxx::result rows = txn.exec_params(
        absl::StrCat(
            "SELECT ", kRunColumns, kRetryColumns, " FROM ", kRunFrom,
            " WHERE r.state IN ('LEASED', 'RUNNING') "
            "AND r.lease_expires_at < to_timestamp($1) ORDER BY r.id FOR UPDATE OF r SKIP LOCKED"),
        EpochSeconds(now));
    for (const auto& row : rows) {
      auto run = RunFromRow(row);
      if (!run.ok()) return run.status();
      RetryDecision decision = decide(*run, v1::FAILURE_CLASS_NODE_LOST, RetryCountsFromRow(row));
      v1::RunState next = decision.next;
      if (!IsAllowedTransition(run->state(), next)) {
        return absl::InternalError(absl::StrCat("retry policy chose ", RunStateName(next), " from ",
                                                RunStateName(run->state())));
      }
      // A gang is lost with the first of its ranks whose worker went silent.
      int64_t lost_worker = run->worker_id();
      std::string lost = absl::StrCat("worker ", lost_worker);
      int lost_rank = 0;
      pqxx::result first_lost = txn.exec_params(
          "SELECT rank, worker_id FROM run_ranks WHERE run_id = $1 AND attempt = $2 "
          "AND state IN ('ADMITTED', 'LEASED') ORDER BY lease_expires_at, rank LIMIT 1",
          run->id(), run->attempt());
      if (!first_lost.empty()) {
        lost_rank = first_lost[0][0].as<int>();
        lost_worker = first_lost[0][1].as<int64_t>();
        lost = absl::StrCat("worker ", lost_worker, " (rank ", lost_rank, ")");
      }
      std::string reason = absl::StrCat("NODE_LOST: lease of ", lost, " expired");
      const std::string evidence = absl::StrCat("no heartbeat renewed the lease of ", lost);
      CloseAttempt(txn, run->id(), run->attempt(), v1::RUN_STATE_FAILED, -1, 0,
                   v1::FAILURE_CLASS_NODE_LOST, reason, evidence);
      ApplyRetryDecision(txn, *run, decision, evidence, lost_worker);
      if (!first_lost.empty()) {
        EndRanks(txn, run->id(), run->attempt(), lost_rank, "FAILED", -1, reason,
                 /*attempt_ended=*/true);
      }
      RecordTransition(txn, run->id(), run->attempt(), run->state(), next,
                       Reason(reason, decision));
      txn.exec_params(
          "UPDATE runs SET worker_id = NULL, lease_expires_at = NULL, failure_class = "
          "'NODE_LOST', message = $2 WHERE id = $1",
          run->id(), reason);
      RefreshSweepState(txn, run->sweep_id());
      expired.push_back({run->id(), run->attempt(), run->worker_id(), next});
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return expired;
}

}  // namespace scalelab::services
