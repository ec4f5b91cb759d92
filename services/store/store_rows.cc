#include "services/store/internal/store_rows.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/common/run_state.h"

namespace scalelab::services::internal {
namespace {

google::protobuf::Timestamp TimestampFromEpoch(double epoch_s) {
  google::protobuf::Timestamp ts;
  double whole = std::floor(epoch_s);
  ts.set_seconds(static_cast<int64_t>(whole));
  ts.set_nanos(static_cast<int32_t>((epoch_s - whole) * 1e9));
  return ts;
}

}  // namespace

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  // Serializing a well-formed message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

absl::Status FromJson(const std::string& json, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // rows written by a newer schema stay readable
  auto status = google::protobuf::util::JsonStringToMessage(json, message, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("stored ", message->GetTypeName(), " is not valid JSON: ", status.ToString()));
  }
  return absl::OkStatus();
}

std::string OverridesToJson(const std::map<std::string, std::string>& overrides) {
  google::protobuf::Struct object;
  for (const auto& [key, value] : overrides) {
    (*object.mutable_fields())[key].set_string_value(value);
  }
  return ToJson(object);
}

absl::StatusOr<v1::Run> RunFromRow(const pqxx::row& row) {
  v1::Run run;
  run.set_id(row[0].as<int64_t>());
  run.set_sweep_id(row[1].as<int64_t>());
  run.set_index(row[2].as<int32_t>());
  auto state = ParseRunState(row[3].as<std::string>());
  if (!state.ok()) return state.status();
  run.set_state(*state);
  if (auto status = FromJson(row[4].as<std::string>(), run.mutable_config()); !status.ok()) {
    return status;
  }
  google::protobuf::Struct overrides;
  if (auto status = FromJson(row[5].as<std::string>(), &overrides); !status.ok()) return status;
  for (const auto& [key, value] : overrides.fields()) {
    (*run.mutable_overrides())[key] = value.string_value();
  }
  run.set_attempt(row[6].as<int32_t>());
  run.set_max_attempts(row[7].as<int32_t>());
  run.set_worker_id(row[8].as<int64_t>());
  run.set_step(row[9].as<int64_t>());
  run.set_tokens(row[10].as<double>());
  run.set_train_loss(row[11].as<double>());
  run.set_val_loss(row[12].as<double>());
  run.set_exit_code(row[13].as<int32_t>());
  run.set_failure_class(ParseFailureClass(row[14].as<std::string>()));
  run.set_message(row[15].as<std::string>());
  *run.mutable_created_at() = TimestampFromEpoch(row[16].as<double>());
  *run.mutable_updated_at() = TimestampFromEpoch(row[17].as<double>());
  return run;
}

absl::StatusOr<v1::Sweep> SweepFromRow(const pqxx::row& row) {
  v1::Sweep sweep;
  sweep.set_id(row[0].as<int64_t>());
  sweep.set_name(row[1].as<std::string>());
  sweep.set_project(row[2].as<std::string>());
  auto kind = ParseRunKind(row[3].as<std::string>());
  if (!kind.ok()) return kind.status();
  sweep.set_kind(*kind);
  auto state = ParseSweepState(row[4].as<std::string>());
  if (!state.ok()) return state.status();
  sweep.set_state(*state);
  if (auto status = FromJson(row[5].as<std::string>(), sweep.mutable_spec()); !status.ok()) {
    return status;
  }
  sweep.set_idempotency_key(row[6].as<std::string>());
  *sweep.mutable_created_at() = TimestampFromEpoch(row[7].as<double>());
  *sweep.mutable_updated_at() = TimestampFromEpoch(row[8].as<double>());
  return sweep;
}

void AddRunCounts(pqxx::work& txn, v1::Sweep* sweep) {
  pqxx::result counts = txn.exec_params(
      "SELECT state, count(*) FROM runs WHERE sweep_id = $1 GROUP BY state", sweep->id());
  int32_t total = 0;
  for (const auto& row : counts) {
    int32_t n = row[1].as<int32_t>();
    (*sweep->mutable_runs_by_state())[row[0].as<std::string>()] = n;
    total += n;
  }
  sweep->set_total_runs(total);
}

void RecordTransition(pqxx::work& txn, int64_t run_id, int32_t attempt, v1::RunState from,
                      v1::RunState to, const std::string& reason) {
  txn.exec_params("UPDATE runs SET state = $2, updated_at = now() WHERE id = $1", run_id,
                  RunStateName(to));
  txn.exec_params(
      "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
      "VALUES ($1, $2, $3, $4, $5)",
      run_id, attempt, RunStateName(from), RunStateName(to), reason);
}

void RefreshSweepState(pqxx::work& txn, int64_t sweep_id) {
  pqxx::row row = txn.exec_params1(
      "SELECT s.state, "
      "  count(r.id) FILTER (WHERE r.state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED')), "
      "  count(r.id) FILTER (WHERE r.state = 'FAILED'), "
      "  count(r.id) FILTER (WHERE r.state = 'CANCELLED') "
      "FROM sweeps s LEFT JOIN runs r ON r.sweep_id = s.id WHERE s.id = $1 GROUP BY s.state",
      sweep_id);
  std::string current = row[0].as<std::string>();
  if (current == "CANCELLED") return;
  std::string next;
  if (row[1].as<int64_t>() > 0) {
    next = "RUNNING";
  } else if (row[2].as<int64_t>() > 0) {
    next = "FAILED";
  } else if (row[3].as<int64_t>() > 0) {
    next = "CANCELLED";
  } else {
    next = "SUCCEEDED";
  }
  if (next != current) {
    txn.exec_params("UPDATE sweeps SET state = $2, updated_at = now() WHERE id = $1", sweep_id,
                    next);
  }
}

}  // namespace scalelab::services::internal
