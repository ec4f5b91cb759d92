// Private to the store: SQL column lists and row -> proto decoding shared by store*.cc.
#ifndef SCALELAB_SERVICES_STORE_INTERNAL_STORE_ROWS_H_
#define SCALELAB_SERVICES_STORE_INTERNAL_STORE_ROWS_H_

#include <google/protobuf/message.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::services {
struct PgPoolOptions;
struct NewRun;
}  // namespace scalelab::services

namespace scalelab::services::internal {

// Adds what the ingest path (store_ingest.cc) needs on every connection: its staging table and
// prepared statements.
void AddIngestStatements(PgPoolOptions* options);

// The devices an attempt `a` (run_attempts) held: what its energy report says, else what
// placement granted it (its GPUs, or its CPU slots when it had none). A macro only so that it
// can be pasted into the literals below.
#define SCALELAB_SQL_ATTEMPT_DEVICES                                                  \
  "(CASE WHEN a.devices > 0 THEN a.devices WHEN cardinality(a.gpu_indices) > 0 THEN " \
  "cardinality(a.gpu_indices) ELSE a.cpu_slots END)"
inline constexpr char kAttemptDevices[] = SCALELAB_SQL_ATTEMPT_DEVICES;

// Selected from kRunFrom; decoded by RunFromRow. The run as stored, its record (what the
// runtime reported) and, from `e`, the energy of its attempts summed. The config comes as
// binary protobuf (config_pb), and as JSON only for runs stored before it existed: decoding
// proto JSON costs ~100x more, which dominated listing a 10,000-run sweep.
inline constexpr char kRunColumns[] =
    "r.id, r.sweep_id, r.run_index, r.state, r.config_pb, "
    "CASE WHEN r.config_pb IS NULL THEN r.config::text END, r.overrides::text, r.attempt, "
    "r.max_attempts, COALESCE(r.worker_id, 0), r.step, r.tokens, "
    "COALESCE(r.train_loss, 'NaN'::float8), COALESCE(r.val_loss, 'NaN'::float8), r.exit_code, "
    "r.failure_class, r.message, date_part('epoch', r.created_at), "
    "date_part('epoch', r.updated_at), "
    "r.n_params, r.n_params_total, r.flops_per_token, r.tokens_trained, r.flops, r.family, "
    "e.energy_j, e.source, e.device_seconds, e.device_kind, e.devices, e.wall_s, "
    "r.kind, r.stage, COALESCE(r.parent_run_id, 0)";

// The FROM clause of kRunColumns: each run with one aggregate over its attempts, evaluated per
// run row (an index lookup on run_attempts' key), so listing runs costs no query per run. The
// aggregate cannot be locked: lock runs with FOR UPDATE OF r. Sources and device kinds of
// attempts that reported one: the single one, or "mixed" (min <> max: no sort, unlike
// count(DISTINCT)). Wall time of ended attempts only, as energy arrives when an attempt ends.
inline constexpr char kRunFrom[] =
    "runs r CROSS JOIN LATERAL (SELECT "
    "COALESCE(sum(a.energy_j), 0) AS energy_j, "
    "CASE WHEN min(NULLIF(a.energy_source, '')) <> max(NULLIF(a.energy_source, '')) "
    "THEN 'mixed' ELSE COALESCE(max(NULLIF(a.energy_source, '')), '') END AS source, "
    "COALESCE(sum(a.device_seconds), 0) AS device_seconds, "
    "CASE WHEN min(NULLIF(a.device_kind, '')) <> max(NULLIF(a.device_kind, '')) "
    "THEN 'mixed' ELSE COALESCE(max(NULLIF(a.device_kind, '')), '') END AS device_kind, "
    "COALESCE(max(" SCALELAB_SQL_ATTEMPT_DEVICES
    "), 0) AS devices, "
    "COALESCE(sum(date_part('epoch', a.ended_at - a.started_at)), 0) AS wall_s "
    "FROM run_attempts a WHERE a.run_id = r.id) e";

// Selected from `sweeps s JOIN projects p`; decoded by SweepFromRow (without run counts).
inline constexpr char kSweepColumns[] =
    "s.id, s.name, p.name, s.kind, s.state, s.spec::text, COALESCE(s.idempotency_key, ''), "
    "extract(epoch from s.created_at)::float8, extract(epoch from s.updated_at)::float8";

// Fencing: OK when `given` (a report's lease token) is 0 (an old worker: the attempt check
// alone decides) or the run's `current` token; else FailedPrecondition "lease token T is not the
// current lease of run R (current U)".
absl::Status CheckLeaseToken(int64_t run_id, int64_t given, int64_t current);

// Times as the SQL here passes them: seconds since the epoch, to_timestamp($n) and
// extract(epoch FROM ...)::float8. Microseconds survive the round trip, as in PostgreSQL.
inline double EpochSeconds(absl::Time t) { return absl::ToUnixMicros(t) / 1e6; }
inline absl::Time TimeFromEpoch(double epoch_s) {
  return absl::FromUnixMicros(static_cast<int64_t>(std::llround(epoch_s * 1e6)));
}

// --- array and number text, for parameters bound as $n::float8[] / bigint[] / text[] ----------
// The text PostgreSQL reads back as exactly `value` (shortest round-trip digits; "NaN",
// "Infinity", "-Infinity").
void AppendFloat8Text(std::string* out, double value);
std::string Float8Text(double value);
// One element of a text[] literal, double-quoted and escaped ("a\"b").
void AppendArrayTextElement(std::string* out, absl::string_view value);
std::string Float8ArrayLiteral(const std::vector<double>& values);
std::string Int64ArrayLiteral(const std::vector<int64_t>& values);
std::string TextArrayLiteral(const std::vector<std::string>& values);
// Decoders of one-dimensional array fields. Internal (naming `what`) for NULL elements, nested
// arrays or numbers that do not parse: the schema does not allow them.
absl::StatusOr<std::vector<double>> Float8ArrayFromField(const pqxx::field& field,
                                                         absl::string_view what);
absl::StatusOr<std::vector<int64_t>> Int64ArrayFromField(const pqxx::field& field,
                                                         absl::string_view what);
absl::StatusOr<std::vector<std::string>> TextArrayFromField(const pqxx::field& field,
                                                            absl::string_view what);
// A float8 as PostgreSQL prints it ("NaN", "Infinity", "1.5e-07"); false when it is not one.
bool ParseFloat8(absl::string_view text, double* value);
// A float8 field as ParseFloat8 reads it; Internal naming `what` when it is NULL or unreadable.
absl::StatusOr<double> Float8FromField(const pqxx::field& field, absl::string_view what);

std::string ToJson(const google::protobuf::Message& message);
absl::Status FromJson(const std::string& json, google::protobuf::Message* message);
// `message` as the JSON that ToJson writes (proto field names, defaults left out), written by
// reflection: protobuf's printer cost ~100 us per RunConfig, most of a large sweep's submission.
// Well-known types inside it go through ToJson.
std::string FastToJson(const google::protobuf::Message& message);

// `text` as a JSON string literal (quotes, backslashes and control characters escaped).
std::string JsonString(absl::string_view text);

std::string OverridesToJson(const std::map<std::string, std::string>& overrides);

absl::StatusOr<v1::Run> RunFromRow(const pqxx::row& row);
absl::StatusOr<v1::Sweep> SweepFromRow(const pqxx::row& row);
// Fills runs_by_state and total_runs.
void AddRunCounts(pqxx::work& txn, v1::Sweep* sweep);

// Writes the new state and its transition row. The caller has checked IsAllowedTransition.
void RecordTransition(pqxx::work& txn, int64_t run_id, int32_t attempt, v1::RunState from,
                      v1::RunState to, const std::string& reason);
// Recomputes a sweep's state from its runs (a CANCELLED sweep stays CANCELLED).
// A sweep whose search is open stays RUNNING when its runs have all ended: more are coming.
void RefreshSweepState(pqxx::work& txn, int64_t sweep_id);
// The sweep with its run counts (store.cc); NotFound when it does not exist.
absl::StatusOr<v1::Sweep> LoadSweep(pqxx::work& txn, int64_t sweep_id);
// The search_nodes row of a run (store_search.cc).
void InsertSearchNode(pqxx::work& txn, int64_t run_id, int64_t sweep_id, const NewRun& run,
                      int32_t generation);

// Selected from `artifacts a`; decoded by ArtifactFromRow (store_artifacts.cc).
extern const char* const kArtifactColumns;
v1::Artifact ArtifactFromRow(const pqxx::row& row);
// The artifact `init` names: from_artifact by id, from_run as that run's latest final weights.
// An empty Artifact when init names nothing; NotFound (naming the init field) when the artifact
// does not exist (yet).
absl::StatusOr<v1::Artifact> ResolveInitArtifact(pqxx::work& txn, const v1::InitSpec& init);

// The leader fence (store_control.cc): OK when `epoch` is 0 or still the live leader lease,
// which then stays so until `txn` ends (share lock); FailedPrecondition otherwise.
absl::Status CheckLeaderFence(pqxx::work& txn, int64_t epoch);

}  // namespace scalelab::services::internal

#endif  // SCALELAB_SERVICES_STORE_INTERNAL_STORE_ROWS_H_
