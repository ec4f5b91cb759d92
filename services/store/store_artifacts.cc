// Artifacts: checkpoints and final weights reported by workers, listed for users, and resolved
// as the starting point of runs that name one (RunConfig.init).
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runspec/text.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {

using runspec::Quoted;

namespace internal {

const char* const kArtifactColumns =
    "a.id, a.run_id, a.attempt, a.step, a.kind, a.location, a.size_bytes, a.sha256, "
    "extract(epoch FROM a.created_at)";

v1::Artifact ArtifactFromRow(const pqxx::row& row) {
  v1::Artifact artifact;
  artifact.set_id(row[0].as<int64_t>());
  artifact.set_run_id(row[1].as<int64_t>());
  artifact.set_attempt(row[2].as<int32_t>());
  artifact.set_step(row[3].as<int64_t>());
  artifact.set_kind(row[4].as<std::string>());
  artifact.set_location(row[5].as<std::string>());
  artifact.set_size_bytes(row[6].as<int64_t>());
  artifact.set_sha256(row[7].as<std::string>());
  const double created = row[8].as<double>();
  artifact.mutable_created_at()->set_seconds(static_cast<int64_t>(created));
  artifact.mutable_created_at()->set_nanos(
      static_cast<int32_t>((created - static_cast<double>(static_cast<int64_t>(created))) * 1e9));
  return artifact;
}

absl::StatusOr<v1::Artifact> ResolveInitArtifact(pqxx::work& txn, const v1::InitSpec& init) {
  pqxx::result rows;
  if (init.from_artifact() > 0) {
    rows = txn.exec_params(
        absl::StrCat("SELECT ", kArtifactColumns, " FROM artifacts a WHERE a.id = $1"),
        init.from_artifact());
    if (rows.empty()) {
      return absl::NotFoundError(
          absl::StrCat("init.from_artifact: no artifact ", init.from_artifact()));
    }
  } else if (init.from_run() > 0) {
    // Only a successful attempt's weights: a failed or cancelled one may have written
    // final.pt and still not be the run's result.
    rows = txn.exec_params(
        absl::StrCat("SELECT ", kArtifactColumns,
                     " FROM artifacts a JOIN run_attempts ra ON ra.run_id = a.run_id AND "
                     "ra.attempt = a.attempt WHERE a.run_id = $1 AND a.kind = 'final' AND "
                     "ra.state = 'SUCCEEDED' ORDER BY a.attempt DESC, a.id DESC LIMIT 1"),
        init.from_run());
    if (rows.empty()) {
      return absl::NotFoundError(
          absl::StrCat("init.from_run: run ", init.from_run(), " has no final weights yet"));
    }
  } else {
    return v1::Artifact();
  }
  return ArtifactFromRow(rows[0]);
}

}  // namespace internal

absl::StatusOr<std::vector<v1::Artifact>> Store::ReportArtifacts(
    const v1::ReportArtifactsRequest& request) {
  for (const v1::Artifact& artifact : request.artifacts()) {
    if (artifact.kind() != "checkpoint" && artifact.kind() != "final") {
      return absl::InvalidArgumentError(absl::StrCat(
          "artifact.kind: expected \"checkpoint\" or \"final\", got ", Quoted(artifact.kind())));
    }
    if (artifact.location().empty()) {
      return absl::InvalidArgumentError("artifact.location: expected a path, got \"\"");
    }
  }
  std::vector<v1::Artifact> stored;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    stored.clear();  // a retried transaction starts over
    pqxx::result run = txn.exec_params(
        "SELECT attempt, COALESCE(worker_id, 0), state, lease_token FROM runs WHERE id = $1 "
        "FOR SHARE",
        request.run_id());
    if (run.empty()) {
      return absl::NotFoundError(absl::StrCat("run ", request.run_id(), " does not exist"));
    }
    if (absl::Status fenced = internal::CheckLeaseToken(request.run_id(), request.lease_token(),
                                                        run[0][run[0].size() - 1].as<int64_t>());
        !fenced.ok()) {
      return fenced;
    }
    if (run[0][0].as<int32_t>() != request.attempt() ||
        run[0][1].as<int64_t>() != request.worker_id() || request.worker_id() <= 0 ||
        (run[0][2].as<std::string>() != "LEASED" && run[0][2].as<std::string>() != "RUNNING")) {
      return absl::FailedPreconditionError(absl::StrCat("run ", request.run_id(), " attempt ",
                                                        request.attempt(), " on worker ",
                                                        request.worker_id(), " is not current"));
    }
    for (const v1::Artifact& artifact : request.artifacts()) {
      txn.exec_params(
          "INSERT INTO artifacts (run_id, attempt, step, kind, location, size_bytes, sha256) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7) "
          "ON CONFLICT (run_id, attempt, kind, step) DO NOTHING",
          request.run_id(), request.attempt(), artifact.step(), artifact.kind(),
          artifact.location(), artifact.size_bytes(), artifact.sha256());
      pqxx::result row = txn.exec_params(
          absl::StrCat("SELECT ", internal::kArtifactColumns,
                       " FROM artifacts a WHERE a.run_id = $1 AND a.attempt = $2 AND "
                       "a.kind = $3 AND a.step = $4"),
          request.run_id(), request.attempt(), artifact.kind(), artifact.step());
      stored.push_back(internal::ArtifactFromRow(row[0]));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return stored;
}

absl::StatusOr<std::vector<v1::Artifact>> Store::ListArtifacts(int64_t run_id) {
  std::vector<v1::Artifact> artifacts;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    artifacts.clear();
    if (txn.exec_params("SELECT 1 FROM runs WHERE id = $1", run_id).empty()) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    }
    pqxx::result rows = txn.exec_params(
        absl::StrCat("SELECT ", internal::kArtifactColumns,
                     " FROM artifacts a WHERE a.run_id = $1 ORDER BY a.attempt, a.step, a.id"),
        run_id);
    for (const auto& row : rows) artifacts.push_back(internal::ArtifactFromRow(row));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return artifacts;
}

absl::Status Store::CheckInitExists(const v1::InitSpec& init) {
  if (init.from_run() == 0 && init.from_artifact() == 0) return absl::OkStatus();
  return pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    if (init.from_artifact() > 0 &&
        txn.exec_params("SELECT 1 FROM artifacts WHERE id = $1", init.from_artifact()).empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "init.from_artifact: expected the id of a stored artifact, got ", init.from_artifact()));
    }
    if (init.from_run() > 0 &&
        txn.exec_params("SELECT 1 FROM runs WHERE id = $1", init.from_run()).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("init.from_run: expected the id of an existing run, got ", init.from_run()));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<UnstartableRun>> Store::FailUnstartableRuns() {
  std::vector<UnstartableRun> ended;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    ended.clear();  // a retried transaction starts over
    if (auto fenced = internal::CheckLeaderFence(txn, leader_fence()); !fenced.ok()) return fenced;
    constexpr char kUnstartable[] =
        "FROM runs q JOIN runs src ON src.id = (q.config->'init'->>'from_run')::bigint "
        "WHERE q.state = 'PENDING' AND src.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') "
        "AND NOT EXISTS ("
        "  SELECT 1 FROM artifacts a JOIN run_attempts ra ON ra.run_id = a.run_id AND "
        "  ra.attempt = a.attempt WHERE a.run_id = src.id AND a.kind = 'final' AND "
        "  ra.state = 'SUCCEEDED')";
    // A source that ended SUCCEEDED without final weights never gets them: the worker reports an
    // attempt's artifacts before completing it, and a completed attempt takes no more reports.
    // Each round ends the runs whose source has ended; a pipeline child cancelled in one round
    // is the ended source of its own children in the next, so a whole subtree goes in one
    // transaction. Rounds are bounded by the depth of the pipeline.
    std::set<int64_t> sweeps;
    while (true) {
      // The dependents' sweeps first, in id order: the lock order of CompleteRun and CancelSweep.
      txn.exec(absl::StrCat("SELECT id FROM sweeps WHERE id IN (SELECT q.sweep_id ", kUnstartable,
                            ") ORDER BY id FOR UPDATE"));
      pqxx::result rows =
          txn.exec(absl::StrCat("SELECT q.id, q.sweep_id, q.attempt, src.id, src.state, src.stage, "
                                "COALESCE(q.parent_run_id, 0) = src.id, left(src.message, 200) ",
                                kUnstartable, " ORDER BY q.id FOR UPDATE OF q"));
      if (rows.empty()) break;
      for (const auto& row : rows) {
        const int64_t run_id = row[0].as<int64_t>();
        const int64_t source_id = row[3].as<int64_t>();
        const std::string source_state = row[4].as<std::string>();
        const bool pipeline_child = row[6].as<bool>();
        const std::string source_message = row[7].as<std::string>();
        UnstartableRun run;
        run.run_id = run_id;
        if (pipeline_child) {
          run.state = v1::RUN_STATE_CANCELLED;
          run.reason =
              absl::StrCat("pipeline parent run ", source_id, " (stage ", row[5].as<std::string>(),
                           ") ended ", source_state, " without final weights",
                           source_message.empty() ? "" : ": ", source_message);
        } else {
          run.state = v1::RUN_STATE_FAILED;
          run.reason = absl::StrCat("init.from_run: run ", source_id, " ended ", source_state,
                                    " without final weights; this run cannot start");
        }
        internal::RecordTransition(txn, run_id, row[2].as<int32_t>(), v1::RUN_STATE_PENDING,
                                   run.state, run.reason);
        txn.exec_params("UPDATE runs SET failure_class = $3, message = $2 WHERE id = $1", run_id,
                        run.reason, pipeline_child ? "CANCELLED" : "USER");
        sweeps.insert(row[1].as<int64_t>());
        ended.push_back(std::move(run));
      }
    }
    for (int64_t sweep_id : sweeps) internal::RefreshSweepState(txn, sweep_id);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return ended;
}

}  // namespace scalelab::services
