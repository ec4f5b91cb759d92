// Workers, heartbeats, attempt completion and lease expiry: the write path of running sweeps.
// Leases are granted in store_placement.cc, metric points ingested in store_ingest.cc.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/common/run_state.h"
#include "services/store/internal/pg_pool.h"
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

// Loads the run and locks it for the rest of the transaction, then checks that `attempt` held
// by `worker_id` is its current attempt. Returns the run, or FailedPrecondition when a newer
// attempt (or no lease) owns it.
absl::StatusOr<v1::Run> LockCurrentAttempt(pqxx::work& txn, int64_t run_id, int32_t attempt,
                                           int64_t worker_id) {
  pqxx::result rows = txn.exec_params(
      absl::StrCat("SELECT ", kRunColumns, " FROM ", kRunFrom, " WHERE r.id = $1 FOR UPDATE OF r"),
      run_id);
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
  auto run = RunFromRow(rows[0]);
  if (!run.ok()) return run;
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
                  const std::string& message) {
  txn.exec_params(
      "UPDATE run_attempts SET state = $3, ended_at = now(), exit_code = $4, term_signal = $5, "
      "failure_class = $6, message = $7 WHERE run_id = $1 AND attempt = $2 AND ended_at IS NULL",
      run_id, attempt, RunStateName(end_state), exit_code, term_signal,
      FailureClassName(failure_class), message);
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
                                                 absl::Time now, absl::Duration lease_ttl) {
  HeartbeatResult result;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    result = HeartbeatResult();  // a retried transaction starts over
    pqxx::result updated = txn.exec_params(
        "UPDATE workers SET last_heartbeat_at = to_timestamp($2) "
        "WHERE id = $1 AND state = 'ALIVE' RETURNING id",
        worker_id, EpochSeconds(now));
    if (updated.empty()) {
      // A LOST worker's runs were already requeued; whatever it still runs must stop.
      result.known = false;
      result.stop = running;
      return absl::OkStatus();
    }
    // Renewed in run id order, the order CancelSweep locks runs in, so the two cannot deadlock.
    std::vector<v1::RunAttempt> sorted = running;
    std::sort(sorted.begin(), sorted.end(), [](const v1::RunAttempt& a, const v1::RunAttempt& b) {
      return a.run_id() < b.run_id();
    });
    for (const v1::RunAttempt& held : sorted) {
      pqxx::result renewed = txn.exec_params(
          "UPDATE runs SET lease_expires_at = to_timestamp($4) WHERE id = $1 AND attempt = $2 "
          "AND worker_id = $3 AND state IN ('LEASED', 'RUNNING') RETURNING id",
          held.run_id(), held.attempt(), worker_id, EpochSeconds(now + lease_ttl));
      if (renewed.empty()) result.stop.push_back(held);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<v1::RunState> Store::CompleteRun(const v1::CompleteRunRequest& request,
                                                const RetryDecider& decide) {
  v1::RunState next = v1::RUN_STATE_UNSPECIFIED;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    if (auto locked = LockSweepOfRun(txn, request.run_id()); !locked.ok()) return locked;
    auto run = LockCurrentAttempt(txn, request.run_id(), request.attempt(), request.worker_id());
    if (!run.ok()) return run.status();
    if (IsTerminal(run->state())) {
      // Cancelled while it ran: the worker stopped it. Only what the attempt used is still
      // worth recording (a re-sent completion writes the same figures again).
      RecordEnergy(txn, run->id(), run->attempt(), request.energy());
      next = run->state();
      return absl::OkStatus();
    }
    v1::FailureClass failure_class =
        request.succeeded() ? v1::FAILURE_CLASS_UNSPECIFIED : request.failure_class();
    next = request.succeeded() ? v1::RUN_STATE_SUCCEEDED : decide(*run, failure_class);
    if (!IsAllowedTransition(run->state(), next)) {
      return absl::InternalError(absl::StrCat("retry policy chose ", RunStateName(next), " from ",
                                              RunStateName(run->state())));
    }
    std::string reason = request.succeeded() ? "trainer exited 0"
                                             : absl::StrCat(FailureClassName(failure_class), ": ",
                                                            request.message());
    CloseAttempt(txn, run->id(), run->attempt(),
                 request.succeeded() ? v1::RUN_STATE_SUCCEEDED : v1::RUN_STATE_FAILED,
                 request.exit_code(), request.term_signal(), failure_class, request.message());
    RecordEnergy(txn, run->id(), run->attempt(), request.energy());
    RecordTransition(txn, run->id(), run->attempt(), run->state(), next, reason);
    txn.exec_params(
        "UPDATE runs SET exit_code = $2, failure_class = $3, message = $4, "
        "lease_expires_at = NULL, worker_id = CASE WHEN $5 THEN NULL ELSE worker_id END "
        "WHERE id = $1",
        run->id(), request.exit_code(), FailureClassName(failure_class), request.message(),
        next == v1::RUN_STATE_PENDING);
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
        "UPDATE workers SET state = 'LOST' WHERE state = 'ALIVE' "
        "AND last_heartbeat_at < to_timestamp($1)",
        EpochSeconds(now - worker_timeout));
    pqxx::result rows = txn.exec_params(
        absl::StrCat(
            "SELECT ", kRunColumns, " FROM ", kRunFrom,
            " WHERE r.state IN ('LEASED', 'RUNNING') "
            "AND r.lease_expires_at < to_timestamp($1) ORDER BY r.id FOR UPDATE OF r SKIP LOCKED"),
        EpochSeconds(now));
    for (const auto& row : rows) {
      auto run = RunFromRow(row);
      if (!run.ok()) return run.status();
      v1::RunState next = decide(*run, v1::FAILURE_CLASS_NODE_LOST);
      if (!IsAllowedTransition(run->state(), next)) {
        return absl::InternalError(absl::StrCat("retry policy chose ", RunStateName(next), " from ",
                                                RunStateName(run->state())));
      }
      std::string reason =
          absl::StrCat("NODE_LOST: lease of worker ", run->worker_id(), " expired");
      CloseAttempt(txn, run->id(), run->attempt(), v1::RUN_STATE_FAILED, -1, 0,
                   v1::FAILURE_CLASS_NODE_LOST, reason);
      RecordTransition(txn, run->id(), run->attempt(), run->state(), next, reason);
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
