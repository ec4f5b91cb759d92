// Attempts as the reliability and carbon reports read them: when each ran, on how many devices,
// how it ended, what it used, and when it wrote checkpoints.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/common/run_state.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {
namespace {

absl::StatusOr<AttemptRecord> AttemptFromRow(const pqxx::row& row) {
  AttemptRecord attempt;
  attempt.run_id = row[0].as<int64_t>();
  attempt.sweep_id = row[1].as<int64_t>();
  attempt.attempt = row[2].as<int32_t>();
  attempt.worker_id = row[3].as<int64_t>();
  auto state = ParseRunState(row[4].as<std::string>());
  if (!state.ok()) return state.status();
  attempt.state = *state;
  attempt.started_at = internal::TimeFromEpoch(row[5].as<double>());
  if (!row[6].is_null()) attempt.ended_at = internal::TimeFromEpoch(row[6].as<double>());
  attempt.failure_class = ParseFailureClass(row[7].as<std::string>());
  attempt.devices = row[8].as<int32_t>();
  attempt.gpus = row[9].as<int32_t>();
  attempt.cpu_slots = row[10].as<int32_t>();
  attempt.energy.set_energy_j(row[11].as<double>());
  attempt.energy.set_source(row[12].as<std::string>());
  attempt.energy.set_device_seconds(row[13].as<double>());
  attempt.energy.set_device_kind(row[14].as<std::string>());
  attempt.energy.set_devices(attempt.devices);
  if (attempt.ended_at) {
    attempt.energy.set_wall_s(absl::ToDoubleSeconds(*attempt.ended_at - attempt.started_at));
  }
  attempt.term_signal = row[16].is_null() ? 0 : row[16].as<int32_t>();
  attempt.evidence = row[17].as<std::string>();
  attempt.lease_token = row[18].as<int64_t>();
  auto checkpoints = internal::Float8ArrayFromField(row[15], "artifacts.created_at");
  if (!checkpoints.ok()) return checkpoints.status();
  for (double epoch_s : *checkpoints) {
    attempt.checkpoint_times.push_back(internal::TimeFromEpoch(epoch_s));
  }
  return attempt;
}

}  // namespace

absl::StatusOr<std::vector<AttemptRecord>> Store::ListAttempts(int64_t sweep_id) {
  std::vector<AttemptRecord> attempts;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    attempts.clear();  // a retried transaction starts over
    if (sweep_id != 0 && txn.exec_params("SELECT 1 FROM sweeps WHERE id = $1", sweep_id).empty()) {
      return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " does not exist"));
    }
    // The checkpoint times come from a subquery per attempt row, served by the artifacts'
    // (run_id, attempt, kind, step) key: one statement, however many attempts.
    pqxx::result rows = txn.exec_params(
        absl::StrCat(
            "SELECT a.run_id, r.sweep_id, a.attempt, a.worker_id, a.state, "
            "extract(epoch FROM a.started_at)::float8, extract(epoch FROM a.ended_at)::float8, "
            "a.failure_class, ",
            internal::kAttemptDevices,
            ", cardinality(a.gpu_indices), a.cpu_slots, a.energy_j, a.energy_source, "
            "a.device_seconds, a.device_kind, "
            "ARRAY(SELECT extract(epoch FROM c.created_at)::float8 FROM artifacts c "
            "      WHERE c.run_id = a.run_id AND c.attempt = a.attempt AND c.kind = 'checkpoint' "
            "      ORDER BY c.created_at, c.step), "
            "a.term_signal, a.evidence, a.lease_token "
            "FROM run_attempts a JOIN runs r ON r.id = a.run_id "
            "WHERE $1 = 0 OR r.sweep_id = $1 ORDER BY a.run_id, a.attempt"),
        sweep_id);
    attempts.reserve(rows.size());
    for (const auto& row : rows) {
      auto attempt = AttemptFromRow(row);
      if (!attempt.ok()) return attempt.status();
      attempts.push_back(*std::move(attempt));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return attempts;
}

}  // namespace scalelab::services
