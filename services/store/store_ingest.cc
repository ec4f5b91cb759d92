// Metric ingest: the hot write path of running sweeps. One transaction per report locks the run,
// stores the batch keyed by (run, attempt, name, step) so a re-sent batch is stored once, and
// moves the run's progress columns (and its record, when reported) in one statement.
//
// Points reach metric_points in one of two ways:
//   - COPY straight into metric_points, for a batch of at least StoreOptions.copy_min_points
//     points that cannot collide with a stored one: every step is above the highest step the
//     attempt has reported (runs.step: reset to 0 by each lease, read under the run's lock, so
//     no other report of the run interleaves) and no (name, step) repeats within the batch.
//     What a trainer sends in order is such a batch, and COPY inserts it in bulk without the
//     per-row conflict check. Should a COPY still meet a stored point, the report is redone
//     the other way;
//   - otherwise (small batches, re-sent ones, steps out of order) one INSERT ... ON CONFLICT DO
//     NOTHING of five arrays unnested by the server: one round trip, and its row count is the
//     number of points that were new.
// Measured with 16 reporters (scalelab-ingest-bench --compare_paths, 2-core machine): COPY and
// arrays are even at 8 points a batch; COPY is 1.2x at 32, 1.3x at 128, 1.5x at 512, 1.9x at
// 8192. COPY into a temporary staging table, then INSERT ... ON CONFLICT from it, was never
// faster than the arrays (each row is handled twice), so it is not used.
#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "services/common/run_state.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {
namespace internal {

void AddIngestStatements(PgPoolOptions* options) {
  options->prepared.emplace_back(
      "report_lock_run",
      "SELECT attempt, COALESCE(worker_id, 0), state, step, tokens, lease_token FROM runs "
      "WHERE id = $1 "
      "FOR UPDATE");
  options->prepared.emplace_back(
      "report_insert_arrays",
      "INSERT INTO metric_points (run_id, attempt, step, name, value, tokens, wall_time_s) "
      "SELECT $1, $2, p.* FROM unnest($3::bigint[], $4::text[], $5::float8[], $6::float8[], "
      "$7::float8[]) AS p ON CONFLICT DO NOTHING");
  // One statement per report. A loss without a new point in this batch keeps its stored value;
  // the record is replaced as a whole when the report carries one. A gang's lease stays the
  // earliest of its ranks' (rank 0 reports; the others only heartbeat), so a silent rank is
  // still seen by the reaper; LEAST ignores the NULL a run of one rank gets.
  options->prepared.emplace_back(
      "report_update_run",
      "UPDATE runs SET step = $2, tokens = $3, lease_expires_at = LEAST(to_timestamp($4), "
      "(SELECT min(rr.lease_expires_at) FROM run_ranks rr WHERE rr.run_id = $1 "
      "AND rr.attempt = runs.attempt AND rr.rank > 0 AND rr.state IN ('ADMITTED', 'LEASED'))), "
      "train_loss = CASE WHEN $5 THEN $6 ELSE train_loss END, "
      "val_loss = CASE WHEN $7 THEN $8 ELSE val_loss END, "
      "n_params = CASE WHEN $9 THEN $10 ELSE n_params END, "
      "n_params_total = CASE WHEN $9 THEN $11 ELSE n_params_total END, "
      "flops_per_token = CASE WHEN $9 THEN $12 ELSE flops_per_token END, "
      "tokens_trained = CASE WHEN $9 THEN $13 ELSE tokens_trained END, "
      "flops = CASE WHEN $9 THEN $14 ELSE flops END, "
      "family = CASE WHEN $9 THEN $15 ELSE family END, "
      "updated_at = now() WHERE id = $1");
}

namespace {

int64_t InsertPointsAsArrays(pqxx::work& txn, const v1::ReportMetricsRequest& request) {
  std::string steps = "{", names = "{", values = "{", tokens = "{", wall_times = "{";
  for (int i = 0; i < request.points_size(); ++i) {
    const v1::MetricPoint& point = request.points(i);
    if (i > 0) {
      for (std::string* array : {&steps, &names, &values, &tokens, &wall_times}) {
        array->push_back(',');
      }
    }
    absl::StrAppend(&steps, point.step());
    AppendArrayTextElement(&names, point.name());
    AppendFloat8Text(&values, point.value());
    AppendFloat8Text(&tokens, point.tokens());
    AppendFloat8Text(&wall_times, point.wall_time_s());
  }
  for (std::string* array : {&steps, &names, &values, &tokens, &wall_times}) {
    array->push_back('}');
  }
  return txn
      .exec_prepared("report_insert_arrays", request.run_id(), request.attempt(), steps, names,
                     values, tokens, wall_times)
      .affected_rows();
}

// True when no point of the batch can already be stored for this attempt, nor twice in it.
bool CannotCollide(const v1::ReportMetricsRequest& request, int64_t attempt_max_step) {
  absl::flat_hash_set<std::pair<absl::string_view, int64_t>> keys;
  keys.reserve(request.points_size());
  for (const v1::MetricPoint& point : request.points()) {
    if (point.step() <= attempt_max_step || !keys.emplace(point.name(), point.step()).second) {
      return false;
    }
  }
  return true;
}

int64_t InsertPointsByCopy(pqxx::work& txn, const v1::ReportMetricsRequest& request) {
  pqxx::stream_to copy(txn, "metric_points",
                       std::vector<std::string>{"run_id", "attempt", "step", "name", "value",
                                                "tokens", "wall_time_s"});
  const std::string run_id = absl::StrCat(request.run_id());
  const std::string attempt = absl::StrCat(request.attempt());
  std::string step, value, tokens, wall_time;
  for (const v1::MetricPoint& point : request.points()) {
    step = absl::StrCat(point.step());
    value.clear();
    AppendFloat8Text(&value, point.value());
    tokens.clear();
    AppendFloat8Text(&tokens, point.tokens());
    wall_time.clear();
    AppendFloat8Text(&wall_time, point.wall_time_s());
    copy << std::tie(run_id, attempt, step, point.name(), value, tokens, wall_time);
  }
  copy.complete();
  return request.points_size();
}

}  // namespace
}  // namespace internal

absl::StatusOr<ReportMetricsResult> Store::ReportMetrics(const v1::ReportMetricsRequest& request,
                                                         absl::Time now, absl::Duration lease_ttl) {
  const bool has_record = request.has_record() && request.record().ByteSizeLong() > 0;
  ReportMetricsResult result;
  bool allow_copy = request.points_size() > 0 && request.points_size() >= copy_min_points_;
  auto report = [&](pqxx::work& txn) -> absl::Status {
    result = ReportMetricsResult();  // a retried transaction starts over
    // Only what this path needs, not the whole run: no config JSON to decode per report.
    pqxx::result rows = txn.exec_prepared("report_lock_run", request.run_id());
    if (rows.empty()) {
      return absl::NotFoundError(absl::StrCat("run ", request.run_id(), " does not exist"));
    }
    const int32_t attempt = rows[0][0].as<int32_t>();
    const int64_t worker_id = rows[0][1].as<int64_t>();
    auto state = ParseRunState(rows[0][2].as<std::string>());
    if (!state.ok()) return state.status();
    if (absl::Status fenced = internal::CheckLeaseToken(request.run_id(), request.lease_token(),
                                                        rows[0][5].as<int64_t>());
        !fenced.ok()) {
      return fenced;
    }
    // worker_id 0 stands for "no worker", so it can never own an attempt.
    if (request.worker_id() <= 0 || attempt != request.attempt() ||
        worker_id != request.worker_id()) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", request.run_id(), " attempt ", request.attempt(), " on worker ",
                       request.worker_id(), " is not current (current: attempt ", attempt,
                       " on worker ", worker_id, ", state ", RunStateName(*state), ")"));
    }
    if (IsTerminal(*state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("run ", request.run_id(), " is ", RunStateName(*state), "; stop reporting"));
    }
    if (*state == v1::RUN_STATE_LEASED) {
      internal::RecordTransition(txn, request.run_id(), attempt, v1::RUN_STATE_LEASED,
                                 v1::RUN_STATE_RUNNING, "trainer started");
      txn.exec_params(
          "UPDATE run_attempts SET state = 'RUNNING' WHERE run_id = $1 AND attempt = $2",
          request.run_id(), attempt);
    }
    const int64_t attempt_max_step = rows[0][3].as<int64_t>();
    if (allow_copy && internal::CannotCollide(request, attempt_max_step)) {
      result.stored = static_cast<int>(internal::InsertPointsByCopy(txn, request));
    } else if (request.points_size() > 0) {
      result.stored = static_cast<int>(internal::InsertPointsAsArrays(txn, request));
    }

    const double stored_tokens = rows[0][4].as<double>();
    int64_t max_step = attempt_max_step;
    double max_tokens = stored_tokens;
    const v1::MetricPoint* last_train = nullptr;
    const v1::MetricPoint* last_val = nullptr;
    for (const v1::MetricPoint& point : request.points()) {
      if (point.step() >= max_step) {
        max_step = point.step();
        max_tokens = std::max(max_tokens, point.tokens());
      }
      if (point.name() == "train_loss" && (!last_train || point.step() >= last_train->step())) {
        last_train = &point;
      }
      if (point.name() == "val_loss" && (!last_val || point.step() >= last_val->step())) {
        last_val = &point;
      }
    }
    result.tokens_added = std::max(0.0, max_tokens - stored_tokens);
    const v1::RunRecord& record = request.record();
    txn.exec_prepared("report_update_run", request.run_id(), max_step, max_tokens,
                      internal::EpochSeconds(now + lease_ttl), last_train != nullptr,
                      last_train ? last_train->value() : 0.0, last_val != nullptr,
                      last_val ? last_val->value() : 0.0, has_record, record.n_params(),
                      record.n_params_total(), record.flops_per_token(), record.tokens(),
                      record.flops(), record.family());
    return absl::OkStatus();
  };
  absl::Status status = pool_->InTransaction(report);
  if (absl::IsAlreadyExists(status) && allow_copy) {
    // A COPY met a stored point after all (written around the store?): store the batch the
    // way that tolerates it rather than refusing it forever.
    allow_copy = false;
    status = pool_->InTransaction(report);
  }
  if (!status.ok()) return status;
  return result;
}

}  // namespace scalelab::services
