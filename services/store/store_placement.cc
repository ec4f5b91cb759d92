// The store's half of leasing: the facts placement decides on (ReadPlacementSnapshot) and the
// persistence of its decisions (CommitLeases). Which run goes where is decided in
// scheduler/placement.cc; here every grant is only re-checked against the rows as they are now.
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
#include "spdlog/spdlog.h"

namespace scalelab::services {

using internal::EpochSeconds;
namespace {

// True for a run of `runs q` that may start: it names no init.from_run, or that run has final
// weights. A fact about the rows, not a policy: the scheduler decides among ready runs.
constexpr char kInitReadySql[] =
    "(COALESCE((q.config->'init'->>'from_run')::bigint, 0) = 0 OR EXISTS (SELECT 1 FROM "
    "artifacts a JOIN run_attempts ra ON ra.run_id = a.run_id AND ra.attempt = a.attempt "
    "WHERE a.run_id = (q.config->'init'->>'from_run')::bigint AND a.kind = 'final' AND "
    "ra.state = 'SUCCEEDED'))";

// Failures: true for a run of `runs q` past its retry backoff. The one place this predicate is
// spelled; the snapshot and CommitLeases both use it. (Avoided workers are a preference, not a
// rule, so they are handed to the scheduler in the snapshot rather than filtered here.)
constexpr char kRetryReadySql[] = "(q.not_before IS NULL OR q.not_before <= now())";

// GPU indices as array_to_string(gpu_indices, ',') wrote them.
absl::StatusOr<std::vector<int>> ParseIndices(const std::string& text) {
  std::vector<int> indices;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int index = 0;
    if (!absl::SimpleAtoi(part, &index)) {
      return absl::InternalError(
          absl::StrCat("run_attempts.gpu_indices: bad element \"", part, "\""));
    }
    indices.push_back(index);
  }
  return indices;
}

// An INT[] literal for a $n::int[] parameter (libpqxx 6 binds no arrays).
std::string ArrayLiteral(const std::vector<int>& indices) {
  return absl::StrCat("{", absl::StrJoin(indices, ","), "}");
}

// Selected per LEASED/RUNNING run with its current attempt's grant: worker id, run id, GPU
// indices, CPU slots, project id.
constexpr char kHeldColumns[] =
    "r.worker_id, r.id, array_to_string(a.gpu_indices, ','), a.cpu_slots, s.project_id "
    "FROM runs r JOIN run_attempts a ON a.run_id = r.id AND a.attempt = r.attempt "
    "JOIN sweeps s ON s.id = r.sweep_id WHERE r.state IN ('LEASED', 'RUNNING')";

// The same columns for ADMITTED runs: what the scheduling cycle set aside for them.
constexpr char kAdmittedColumns[] =
    "r.admitted_worker_id, r.id, array_to_string(r.admitted_gpu_indices, ','), "
    "r.admitted_cpu_slots, s.project_id FROM runs r JOIN sweeps s ON s.id = r.sweep_id "
    "WHERE r.state = 'ADMITTED'";

// The same columns for ranks > 0 of gangs (rank 0 is the run's, above): what each holds on its
// worker while its gang is admitted or its attempt runs, until the rank itself ends.
constexpr char kGangRankColumns[] =
    "rr.worker_id, rr.run_id, array_to_string(rr.gpu_indices, ','), rr.cpu_slots, s.project_id "
    "FROM run_ranks rr JOIN runs r ON r.id = rr.run_id JOIN sweeps s ON s.id = r.sweep_id "
    "WHERE rr.rank > 0 AND rr.state IN ('ADMITTED', 'LEASED') "
    "AND ((r.state = 'ADMITTED' AND rr.attempt = r.attempt + 1) "
    "     OR (r.state IN ('LEASED', 'RUNNING') AND rr.attempt = r.attempt))";

// THE workers admission may place runs on: id, inventory, quarantined, by id. QUARANTINED workers
// are read too (they hold resources for their running attempts); ToClusterSnapshot gives them
// nothing new. The inventory only of workers above $1, the highest id the store has parsed
// (Store::inventories_); one below it that the cache lacks is read by kInventoriesSql.
constexpr char kEligibleWorkersSql[] =
    "SELECT id, CASE WHEN id > $1 THEN inventory::text END, state = 'QUARANTINED' FROM workers "
    "WHERE state IN ('ALIVE', 'QUARANTINED') ORDER BY id";
constexpr char kInventoriesSql[] = "SELECT id, inventory::text FROM workers WHERE id = ANY($1)";

// THE runs admission may place: PENDING, with the head of each (project, priority) queue when
// $1 > 0, and past their retry backoff (kRetryReadySql's predicate on r). Columns: id, sweep id,
// run index, resources JSON, init ready, project id, priority, avoided workers.
// Each queue's head is read by walking runs_state_idx (state, sweep_id, run_index) in order and
// stopping at $1 rows, so a pass costs the window, not the backlog: the window function over
// every PENDING run this replaces took 360 ms with 100,000 pending (bench/README.md).
constexpr char kEligiblePendingSql[] =
    "SELECT q.id, q.sweep_id, q.run_index, COALESCE(q.config->'resources', '{}')::text, "
    "(COALESCE((q.config->'init'->>'from_run')::bigint, 0) = 0 OR EXISTS (SELECT 1 FROM "
    "artifacts a JOIN run_attempts ra ON ra.run_id = a.run_id AND ra.attempt = a.attempt "
    "WHERE a.run_id = (q.config->'init'->>'from_run')::bigint AND a.kind = 'final' AND "
    "ra.state = 'SUCCEEDED')), q.project_id, q.priority, "
    "array_to_string(q.avoid_workers, ',') FROM ("
    "  SELECT DISTINCT s.project_id, s.priority FROM sweeps s WHERE EXISTS ("
    "    SELECT 1 FROM runs r WHERE r.state = 'PENDING' AND r.sweep_id = s.id)) k "
    "CROSS JOIN LATERAL ("
    "  SELECT r.id, r.sweep_id, r.run_index, r.config, s.project_id, s.priority, r.avoid_workers "
    "  FROM runs r JOIN sweeps s ON s.id = r.sweep_id "
    "  WHERE r.state = 'PENDING' AND s.project_id = k.project_id AND s.priority = k.priority "
    "    AND (r.not_before IS NULL OR r.not_before <= now()) "
    "  ORDER BY r.sweep_id, r.run_index LIMIT CASE WHEN $1 > 0 THEN $1 END) q "
    "ORDER BY q.sweep_id, q.run_index";

// Why `grant` cannot be honoured on a worker with `slots_total` CPU slots and these GPUs, of
// which `held_gpus` and `held_slots` are taken; "" when it can.
std::string GrantConflict(const LeaseGrant& grant, int slots_total, const std::set<int>& gpus,
                          const std::set<int>& held_gpus, int held_slots) {
  if (grant.cpu_slots < 0) return absl::StrCat("cpu_slots ", grant.cpu_slots, " is negative");
  if (held_slots + grant.cpu_slots > slots_total) {
    return absl::StrCat(grant.cpu_slots, " CPU slots asked, ", slots_total - held_slots, " free");
  }
  std::set<int> seen;
  for (int index : grant.gpu_indices) {
    if (gpus.count(index) == 0) return absl::StrCat("the worker has no GPU ", index);
    if (held_gpus.count(index) > 0 || !seen.insert(index).second) {
      return absl::StrCat("GPU ", index, " is already held");
    }
  }
  return "";
}

// The lease of a run's current attempt from its row (id, attempt, sweep_id, kind, config::text,
// lease_token): the spec with its resolved init artifact, these GPUs, the ttl and the newest
// checkpoint the store recorded.
absl::StatusOr<v1::Lease> LeaseFromRow(pqxx::work& txn, const pqxx::row& row,
                                       const std::vector<int>& gpu_indices,
                                       absl::Duration lease_ttl) {
  v1::Lease lease;
  v1::RunSpec& spec = *lease.mutable_spec();
  spec.set_run_id(row[0].as<int64_t>());
  spec.set_attempt(row[1].as<int32_t>());
  spec.set_sweep_id(row[2].as<int64_t>());
  spec.set_lease_token(row[5].as<int64_t>());
  auto kind = ParseRunKind(row[3].as<std::string>());
  if (!kind.ok()) return kind.status();
  spec.set_kind(*kind);
  if (auto parsed = internal::FromJson(row[4].as<std::string>(), spec.mutable_config());
      !parsed.ok()) {
    return parsed;
  }
  auto init = internal::ResolveInitArtifact(txn, spec.config().init());
  if (!init.ok()) return init.status();
  if (init->id() != 0) *spec.mutable_init_artifact() = *std::move(init);
  for (int index : gpu_indices) spec.mutable_execution()->add_gpu_indices(index);
  lease.set_lease_ttl_s(absl::ToDoubleSeconds(lease_ttl));
  lease.set_checkpoints_known(true);
  lease.set_last_checkpoint_step(
      txn.exec_params1("SELECT COALESCE(max(step), 0) FROM artifacts WHERE run_id = $1 "
                       "AND kind = 'checkpoint'",
                       spec.run_id())[0]
          .as<int64_t>());
  return lease;
}

// Starts the next attempt of `run_id` on `worker_id` with these resources: the run becomes
// LEASED (from `from`: PENDING for a direct grant, ADMITTED for an admission), the attempt row
// and the transition are written, and the lease for the worker is built. The caller holds the
// run's row lock. `reason` "" = "leased to worker W[ on GPUs ...]".
absl::StatusOr<v1::Lease> StartAttempt(pqxx::work& txn, int64_t run_id, int64_t worker_id,
                                       const std::vector<int>& gpu_indices, int cpu_slots,
                                       v1::RunState from, absl::Time now, absl::Duration lease_ttl,
                                       std::string reason = "") {
  pqxx::result row = txn.exec_params(
      "UPDATE runs r SET state = 'LEASED', attempt = r.attempt + 1, worker_id = $2, "
      "  lease_expires_at = to_timestamp($3), updated_at = now(), step = 0, tokens = 0, "
      "  train_loss = NULL, val_loss = NULL, admitted_worker_id = NULL, "
      "  admitted_gpu_indices = NULL, admitted_cpu_slots = NULL, admitted_at = NULL, "
      "  lease_token = nextval('lease_tokens') "
      "WHERE r.id = $1 "
      "RETURNING r.id, r.attempt, r.sweep_id, r.kind, r.config::text, r.lease_token",
      run_id, worker_id, EpochSeconds(now + lease_ttl));
  if (row.empty()) return absl::InternalError(absl::StrCat("run ", run_id, " vanished"));
  auto lease = LeaseFromRow(txn, row[0], gpu_indices, lease_ttl);
  if (!lease.ok()) return lease;
  const v1::RunSpec& spec = lease->spec();
  txn.exec_params(
      "INSERT INTO run_attempts (run_id, attempt, worker_id, state, gpu_indices, cpu_slots, "
      "lease_token) VALUES ($1, $2, $3, 'LEASED', $4::int[], $5, $6)",
      spec.run_id(), spec.attempt(), worker_id, ArrayLiteral(gpu_indices), cpu_slots,
      spec.lease_token());
  if (reason.empty()) {
    reason = absl::StrCat("leased to worker ", worker_id);
    if (!gpu_indices.empty()) {
      absl::StrAppend(&reason, " on GPUs ", absl::StrJoin(gpu_indices, ","));
    }
  }
  txn.exec_params(
      "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
      "VALUES ($1, $2, $3, 'LEASED', $4)",
      spec.run_id(), spec.attempt(), RunStateName(from), reason);
  return lease;
}

// One rank of a gang's attempt as run_ranks holds it, with its worker's address.
struct GangRank {
  int rank = 0;
  int64_t worker_id = 0;
  std::vector<int> gpu_indices;
  int cpu_slots = 0;
  std::string address;  // RegisterRequest.address, else the worker's hostname
};

// Hands `worker_id` rank `rank` of the gang `run_id` (ADMITTED, or LEASED/RUNNING when another
// rank was leased first). The first rank leased starts the attempt for all of them, with rank 0's
// grant as the attempt's and every rank's lease running from now; each rank's lease then lives
// on its own worker's heartbeats. The caller holds the run's row lock.
absl::StatusOr<v1::Lease> LeaseGangRank(pqxx::work& txn, int64_t run_id, int rank,
                                        int64_t worker_id, absl::Time now, absl::Duration lease_ttl,
                                        const RendezvousPorts& ports) {
  pqxx::result run = txn.exec_params("SELECT state, attempt FROM runs WHERE id = $1", run_id);
  if (run.empty()) return absl::InternalError(absl::StrCat("run ", run_id, " vanished"));
  const bool start = run[0][0].as<std::string>() == "ADMITTED";
  const int32_t attempt = run[0][1].as<int32_t>() + (start ? 1 : 0);
  std::vector<GangRank> ranks;
  for (const auto& row : txn.exec_params(
           "SELECT rr.rank, rr.worker_id, array_to_string(rr.gpu_indices, ','), rr.cpu_slots, "
           "  COALESCE(NULLIF(w.inventory->>'address', ''), w.hostname, '') "
           "FROM run_ranks rr JOIN workers w ON w.id = rr.worker_id "
           "WHERE rr.run_id = $1 AND rr.attempt = $2 ORDER BY rr.rank",
           run_id, attempt)) {
    GangRank gang_rank;
    gang_rank.rank = row[0].as<int>();
    gang_rank.worker_id = row[1].as<int64_t>();
    auto indices = ParseIndices(row[2].as<std::string>());
    if (!indices.ok()) return indices.status();
    gang_rank.gpu_indices = *std::move(indices);
    gang_rank.cpu_slots = row[3].as<int>();
    gang_rank.address = row[4].as<std::string>();
    ranks.push_back(std::move(gang_rank));
  }
  if (ranks.empty() || ranks.front().rank != 0 || rank >= static_cast<int>(ranks.size()) ||
      ranks[rank].rank != rank) {
    return absl::InternalError(absl::StrCat("run ", run_id, " attempt ", attempt,
                                            ": run_ranks does not hold ranks 0..n-1"));
  }
  absl::StatusOr<v1::Lease> lease;
  if (start) {
    std::string reason = absl::StrCat("leased as a gang of ", ranks.size(), " ranks:");
    for (const GangRank& gang_rank : ranks) {
      absl::StrAppend(&reason, gang_rank.rank == 0 ? " " : ", ", "rank ", gang_rank.rank,
                      " on worker ", gang_rank.worker_id);
      if (!gang_rank.gpu_indices.empty()) {
        absl::StrAppend(&reason, " (GPUs ", absl::StrJoin(gang_rank.gpu_indices, ","), ")");
      }
    }
    lease = StartAttempt(txn, run_id, ranks[0].worker_id, ranks[0].gpu_indices, ranks[0].cpu_slots,
                         v1::RUN_STATE_ADMITTED, now, lease_ttl, reason);
    if (!lease.ok()) return lease;
    txn.exec_params(
        "UPDATE run_ranks SET lease_expires_at = to_timestamp($3) "
        "WHERE run_id = $1 AND attempt = $2",
        run_id, attempt, EpochSeconds(now + lease_ttl));
  } else {
    pqxx::result row = txn.exec_params(
        "SELECT id, attempt, sweep_id, kind, config::text, lease_token FROM runs WHERE id = $1",
        run_id);
    lease = LeaseFromRow(txn, row[0], {}, lease_ttl);
    if (!lease.ok()) return lease;
  }
  const GangRank& mine = ranks[rank];
  v1::ExecutionSpec& execution = *lease->mutable_spec()->mutable_execution();
  execution.clear_gpu_indices();
  for (int index : mine.gpu_indices) execution.add_gpu_indices(index);
  execution.set_rank(rank);
  execution.set_world_size(static_cast<int>(ranks.size()));
  execution.set_local_rank(static_cast<int>(
      std::count_if(ranks.begin(), ranks.begin() + rank,
                    [&](const GangRank& other) { return other.worker_id == mine.worker_id; })));
  const int64_t token = lease->spec().lease_token();
  execution.set_rendezvous(
      absl::StrCat(ranks[0].address, ":", ports.base + token % std::max(ports.count, 1)));
  execution.set_backend(mine.gpu_indices.empty() ? "gloo" : "nccl");
  txn.exec_params(
      "UPDATE run_ranks SET state = 'LEASED', leased_at = to_timestamp($4) "
      "WHERE run_id = $1 AND attempt = $2 AND rank = $3",
      run_id, attempt, rank, EpochSeconds(now));
  return lease;
}

}  // namespace

absl::StatusOr<PlacementSnapshot> Store::ReadPlacementSnapshot(int max_pending_per_queue) {
  PlacementSnapshot snapshot;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    snapshot = PlacementSnapshot();  // a retried transaction starts over
    // One snapshot for the reads, so a run leased in between is not both pending and held.
    txn.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
    {
      std::lock_guard<std::mutex> lock(inventory_mu_);
      const int64_t highest_parsed = inventories_.empty() ? 0 : inventories_.rbegin()->first;
      pqxx::result workers = txn.exec_params(kEligibleWorkersSql, highest_parsed);
      auto parse = [this](int64_t worker_id, const std::string& json) -> absl::Status {
        v1::RegisterRequest inventory;
        if (auto parsed = internal::FromJson(json, &inventory); !parsed.ok()) {
          return absl::InternalError(
              absl::StrCat("workers.inventory of worker ", worker_id, ": ", parsed.message()));
        }
        inventories_[worker_id] = std::move(inventory);
        return absl::OkStatus();
      };
      std::vector<int64_t> missing;  // below highest_parsed but not parsed (committed late)
      for (const auto& row : workers) {
        const int64_t worker_id = row[0].as<int64_t>();
        if (!row[1].is_null()) {
          if (absl::Status parsed = parse(worker_id, row[1].as<std::string>()); !parsed.ok()) {
            return parsed;
          }
        } else if (inventories_.count(worker_id) == 0) {
          missing.push_back(worker_id);
        }
      }
      if (!missing.empty()) {
        for (const auto& row :
             txn.exec_params(kInventoriesSql, internal::Int64ArrayLiteral(missing))) {
          if (absl::Status parsed = parse(row[0].as<int64_t>(), row[1].as<std::string>());
              !parsed.ok()) {
            return parsed;
          }
        }
      }
      std::map<int64_t, v1::RegisterRequest> seen;  // LOST workers' entries are dropped
      for (const auto& row : workers) {
        const int64_t worker_id = row[0].as<int64_t>();
        auto cached = inventories_.find(worker_id);
        if (cached == inventories_.end()) {
          return absl::InternalError(
              absl::StrCat("workers.inventory of worker ", worker_id, ": not found"));
        }
        StoredWorker worker;
        worker.worker_id = worker_id;
        worker.inventory = cached->second;
        worker.quarantined = row[2].as<bool>();
        snapshot.workers.push_back(std::move(worker));
        seen.insert(inventories_.extract(cached));
      }
      // Keep the highest id parsed even when that worker is gone, so it is not parsed again.
      if (!inventories_.empty() &&
          (seen.empty() || inventories_.rbegin()->first > seen.rbegin()->first)) {
        seen.insert(inventories_.extract(std::prev(inventories_.end())));
      }
      inventories_ = std::move(seen);
    }
    pqxx::result held =
        txn.exec(absl::StrCat("SELECT ", kHeldColumns, " UNION ALL SELECT ", kAdmittedColumns,
                              " UNION ALL SELECT ", kGangRankColumns, " ORDER BY 1, 2"));
    for (const auto& row : held) {
      int64_t worker_id = row[0].as<int64_t>();
      auto worker =
          std::lower_bound(snapshot.workers.begin(), snapshot.workers.end(), worker_id,
                           [](const StoredWorker& w, int64_t id) { return w.worker_id < id; });
      // A LOST worker's runs are requeued by the reaper; until then they hold nothing usable.
      if (worker == snapshot.workers.end() || worker->worker_id != worker_id) continue;
      HeldResources resources;
      resources.run_id = row[1].as<int64_t>();
      auto indices = ParseIndices(row[2].as<std::string>());
      if (!indices.ok()) return indices.status();
      resources.gpu_indices = *std::move(indices);
      resources.cpu_slots = row[3].as<int>();
      resources.project_id = row[4].as<int64_t>();
      worker->held.push_back(std::move(resources));
    }
    // Preemption hook: a preemptor's admission shares its victims' resources until they end.
    if (absl::Status discounted = internal::DiscountPreemptorHolds(txn, &snapshot.workers);
        !discounted.ok()) {
      return discounted;
    }
    pqxx::result pending = txn.exec_params(kEligiblePendingSql, max_pending_per_queue);
    snapshot.pending.reserve(pending.size());
    // The runs of a sweep mostly ask for the same resources: each distinct JSON text is parsed
    // once per read.
    std::map<std::string, v1::ResourceSpec, std::less<>> parsed_resources;
    for (const auto& row : pending) {
      StoredPendingRun run;
      run.run_id = row[0].as<int64_t>();
      run.sweep_id = row[1].as<int64_t>();
      run.run_index = row[2].as<int32_t>();
      const absl::string_view resources_json(row[3].c_str(), row[3].size());
      if (auto known = parsed_resources.find(resources_json); known != parsed_resources.end()) {
        run.resources = known->second;
      } else if (auto parsed = internal::FromJson(std::string(resources_json), &run.resources);
                 !parsed.ok()) {
        return absl::InternalError(
            absl::StrCat("config.resources of run ", run.run_id, ": ", parsed.message()));
      } else {
        parsed_resources.emplace(std::string(resources_json), run.resources);
      }
      run.init_ready = row[4].as<bool>();
      run.project_id = row[5].as<int64_t>();
      run.priority = row[6].as<std::string>();
      for (absl::string_view part : absl::StrSplit(row[7].c_str(), ',', absl::SkipEmpty())) {
        int64_t avoided = 0;
        if (!absl::SimpleAtoi(part, &avoided)) {
          return absl::InternalError(absl::StrCat("runs.avoid_workers of run ", run.run_id,
                                                  ": bad element \"", part, "\""));
        }
        run.avoid_workers.push_back(avoided);
      }
      snapshot.pending.push_back(std::move(run));
    }
    for (const auto& row :
         txn.exec("SELECT id, name, gpu_quota, weight FROM projects ORDER BY id")) {
      StoredProject project;
      project.project_id = row[0].as<int64_t>();
      project.name = row[1].as<std::string>();
      project.gpu_quota = row[2].as<int>();
      project.weight = row[3].as<double>();
      snapshot.projects.push_back(std::move(project));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return snapshot;
}

absl::StatusOr<std::vector<v1::Lease>> Store::CommitLeases(int64_t worker_id,
                                                           const std::vector<LeaseGrant>& grants,
                                                           absl::Time now,
                                                           absl::Duration lease_ttl) {
  std::vector<v1::Lease> leases;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    leases.clear();  // a retried transaction starts over
    // The worker row lock serializes commits for one worker, so the held resources read below
    // stay true until this transaction ends.
    pqxx::result worker = txn.exec_params(
        "SELECT state, inventory::text FROM workers WHERE id = $1 FOR UPDATE", worker_id);
    if (!worker.empty() && worker[0][0].as<std::string>() == "QUARANTINED") {
      if (!grants.empty()) spdlog::info("worker {} is quarantined: no leases", worker_id);
      return absl::OkStatus();
    }
    if (worker.empty() || worker[0][0].as<std::string>() != "ALIVE") {
      return absl::FailedPreconditionError(absl::StrCat(
          "worker ", worker_id, " is not registered or was declared lost; register again"));
    }
    if (grants.empty()) return absl::OkStatus();
    v1::RegisterRequest inventory;
    if (auto parsed = internal::FromJson(worker[0][1].as<std::string>(), &inventory);
        !parsed.ok()) {
      return absl::InternalError(
          absl::StrCat("workers.inventory of worker ", worker_id, ": ", parsed.message()));
    }
    std::set<int> gpus;
    for (const v1::GpuInfo& gpu : inventory.gpus()) gpus.insert(gpu.index());
    std::set<int> held_gpus;
    int held_slots = 0;
    for (const auto& row : txn.exec_params(
             absl::StrCat("SELECT ", kHeldColumns, " AND r.worker_id = $1 UNION ALL SELECT ",
                          kAdmittedColumns, " AND r.admitted_worker_id = $1 UNION ALL SELECT ",
                          kGangRankColumns, " AND rr.worker_id = $1"),
             worker_id)) {
      auto indices = ParseIndices(row[2].as<std::string>());
      if (!indices.ok()) return indices.status();
      held_gpus.insert(indices->begin(), indices->end());
      held_slots += row[3].as<int>();
    }

    for (const LeaseGrant& grant : grants) {
      if (std::string conflict =
              GrantConflict(grant, inventory.cpu_slots(), gpus, held_gpus, held_slots);
          !conflict.empty()) {
        spdlog::info("lease of run {} to worker {} dropped: {}", grant.run_id, worker_id, conflict);
        continue;
      }
      // SKIP LOCKED: a run another transaction is leasing right now is not waited for; whoever
      // holds it decides, and this grant is dropped. The worker asks again on its next poll.
      pqxx::result locked = txn.exec_params(
          absl::StrCat("SELECT q.id FROM runs q WHERE q.id = $1 AND q.state = "
                       "'PENDING' AND ",
                       kInitReadySql, " AND ", kRetryReadySql, " FOR UPDATE SKIP LOCKED"),
          grant.run_id);
      if (locked.empty()) {
        spdlog::debug("lease of run {} to worker {} dropped: no longer pending and ready",
                      grant.run_id, worker_id);
        continue;
      }
      auto lease = StartAttempt(txn, grant.run_id, worker_id, grant.gpu_indices, grant.cpu_slots,
                                v1::RUN_STATE_PENDING, now, lease_ttl);
      if (!lease.ok()) return lease.status();
      held_gpus.insert(grant.gpu_indices.begin(), grant.gpu_indices.end());
      held_slots += grant.cpu_slots;
      leases.push_back(*std::move(lease));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return leases;
}

absl::StatusOr<std::vector<v1::Lease>> Store::LeaseAdmitted(int64_t worker_id, int max_runs,
                                                            absl::Time now,
                                                            absl::Duration lease_ttl,
                                                            const RendezvousPorts& ports) {
  std::vector<v1::Lease> leases;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    leases.clear();  // a retried transaction starts over
    pqxx::result worker = txn.exec_params("SELECT state FROM workers WHERE id = $1", worker_id);
    if (worker.empty() || worker[0][0].as<std::string>() != "ALIVE") {
      return absl::FailedPreconditionError(absl::StrCat(
          "worker ", worker_id, " is not registered or was declared lost; register again"));
    }
    if (max_runs <= 0) return absl::OkStatus();
    // Runs of one rank (a gang's rank 0 is leased below, with its other ranks). Preemption
    // hook: a preemptor waits until every victim attempt has ended.
    pqxx::result admitted = txn.exec_params(
        absl::StrCat(
            "SELECT id, array_to_string(admitted_gpu_indices, ','), admitted_cpu_slots FROM runs q "
            "WHERE state = 'ADMITTED' AND admitted_worker_id = $1 AND NOT EXISTS (SELECT 1 FROM "
            "  run_ranks rr WHERE rr.run_id = q.id AND rr.attempt = q.attempt + 1) AND ",
            internal::NoVictimRunningSql("q"),
            " ORDER BY admitted_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"),
        worker_id, max_runs);
    for (const auto& row : admitted) {
      auto indices = ParseIndices(row[1].as<std::string>());
      if (!indices.ok()) return indices.status();
      auto lease = StartAttempt(txn, row[0].as<int64_t>(), worker_id, *indices, row[2].as<int>(),
                                v1::RUN_STATE_ADMITTED, now, lease_ttl);
      if (!lease.ok()) return lease.status();
      leases.push_back(*std::move(lease));
    }
    const int room = max_runs - static_cast<int>(leases.size());
    if (room <= 0) return absl::OkStatus();
    // Ranks of gangs admitted to this worker, whether their attempt started (another rank was
    // leased first) or not. SKIP LOCKED: a gang another worker is leasing right now waits for
    // this worker's next poll.
    pqxx::result ranks = txn.exec_params(
        "SELECT rr.run_id, rr.rank FROM run_ranks rr JOIN runs r ON r.id = rr.run_id "
        "WHERE rr.worker_id = $1 AND rr.state = 'ADMITTED' "
        "AND ((r.state = 'ADMITTED' AND rr.attempt = r.attempt + 1) "
        "     OR (r.state IN ('LEASED', 'RUNNING') AND rr.attempt = r.attempt)) "
        "ORDER BY rr.run_id, rr.rank LIMIT $2 FOR UPDATE OF r SKIP LOCKED",
        worker_id, room);
    for (const auto& row : ranks) {
      auto lease = LeaseGangRank(txn, row[0].as<int64_t>(), row[1].as<int>(), worker_id, now,
                                 lease_ttl, ports);
      if (!lease.ok()) return lease.status();
      leases.push_back(*std::move(lease));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return leases;
}

}  // namespace scalelab::services
