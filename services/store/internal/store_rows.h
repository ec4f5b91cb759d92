// Private to the store: SQL column lists and row -> proto decoding shared by store*.cc.
#ifndef SCALELAB_SERVICES_STORE_INTERNAL_STORE_ROWS_H_
#define SCALELAB_SERVICES_STORE_INTERNAL_STORE_ROWS_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <map>
#include <pqxx/pqxx>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::services::internal {

// Selected from `runs r`; decoded by RunFromRow.
inline constexpr char kRunColumns[] =
    "r.id, r.sweep_id, r.run_index, r.state, r.config::text, r.overrides::text, r.attempt, "
    "r.max_attempts, COALESCE(r.worker_id, 0), r.step, r.tokens, "
    "COALESCE(r.train_loss, 'NaN'::float8), COALESCE(r.val_loss, 'NaN'::float8), r.exit_code, "
    "r.failure_class, r.message, extract(epoch from r.created_at)::float8, "
    "extract(epoch from r.updated_at)::float8";

// Selected from `sweeps s JOIN projects p`; decoded by SweepFromRow (without run counts).
inline constexpr char kSweepColumns[] =
    "s.id, s.name, p.name, s.kind, s.state, s.spec::text, COALESCE(s.idempotency_key, ''), "
    "extract(epoch from s.created_at)::float8, extract(epoch from s.updated_at)::float8";

std::string ToJson(const google::protobuf::Message& message);
absl::Status FromJson(const std::string& json, google::protobuf::Message* message);
std::string OverridesToJson(const std::map<std::string, std::string>& overrides);

absl::StatusOr<v1::Run> RunFromRow(const pqxx::row& row);
absl::StatusOr<v1::Sweep> SweepFromRow(const pqxx::row& row);
// Fills runs_by_state and total_runs.
void AddRunCounts(pqxx::work& txn, v1::Sweep* sweep);

// Writes the new state and its transition row. The caller has checked IsAllowedTransition.
void RecordTransition(pqxx::work& txn, int64_t run_id, int32_t attempt, v1::RunState from,
                      v1::RunState to, const std::string& reason);
// Recomputes a sweep's state from its runs (a CANCELLED sweep stays CANCELLED).
void RefreshSweepState(pqxx::work& txn, int64_t sweep_id);

// Selected from `artifacts a`; decoded by ArtifactFromRow (store_artifacts.cc).
extern const char* const kArtifactColumns;
v1::Artifact ArtifactFromRow(const pqxx::row& row);
// The artifact `init` names: from_artifact by id, from_run as that run's latest final weights.
// An empty Artifact when init names nothing; NotFound (naming the init field) when the artifact
// does not exist (yet).
absl::StatusOr<v1::Artifact> ResolveInitArtifact(pqxx::work& txn, const v1::InitSpec& init);

}  // namespace scalelab::services::internal

#endif  // SCALELAB_SERVICES_STORE_INTERNAL_STORE_ROWS_H_
