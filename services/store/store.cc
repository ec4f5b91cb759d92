// Sweeps, runs and results. Leases and worker bookkeeping live in store_leases.cc.
#include "services/store/store.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runspec/run_config.h"
#include "services/common/run_state.h"
#include "services/store/internal/migrations.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"

namespace scalelab::services {

using internal::AddRunCounts;
using internal::kRunColumns;
using internal::kRunFrom;
using internal::kSweepColumns;
using internal::RecordTransition;
using internal::RunFromRow;
using internal::SweepFromRow;

absl::Status StoreOptions::Validate() const {
  if (url.empty()) {
    return absl::InvalidArgumentError("database url: expected a libpq URI, got \"\"");
  }
  if (pool_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("pool_size: expected >= 1, got ", pool_size));
  }
  if (copy_min_points < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy_min_points: expected >= 0, got ", copy_min_points));
  }
  return absl::OkStatus();
}

Store::Store(std::unique_ptr<PgPool> pool, const StoreOptions& options)
    : pool_(std::move(pool)), copy_min_points_(options.copy_min_points), url_(options.url) {}

Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (options.apply_migrations) {
    auto applied = ApplyMigrations(options.url);
    if (!applied.ok()) return applied.status();
  }
  PgPoolOptions pool_options;
  pool_options.url = options.url;
  pool_options.size = options.pool_size;
  internal::AddIngestStatements(&pool_options);
  auto pool = std::make_unique<PgPool>(std::move(pool_options));
  if (auto status = pool->Ping(); !status.ok()) return status;
  return std::unique_ptr<Store>(new Store(std::move(pool), options));
}

namespace internal {

absl::StatusOr<v1::Sweep> LoadSweep(pqxx::work& txn, int64_t sweep_id) {
  pqxx::result rows = txn.exec_params(
      absl::StrCat("SELECT ", kSweepColumns,
                   " FROM sweeps s JOIN projects p ON p.id = s.project_id WHERE s.id = $1"),
      sweep_id);
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " does not exist"));
  auto sweep = SweepFromRow(rows[0]);
  if (!sweep.ok()) return sweep;
  AddRunCounts(txn, &*sweep);
  return sweep;
}

}  // namespace internal

using internal::LoadSweep;

absl::StatusOr<CreateSweepResult> Store::CreateSweep(const v1::SweepSpec& spec,
                                                     const std::string& manifest,
                                                     const std::string& idempotency_key,
                                                     const std::vector<NewRun>& runs) {
  CreateSweepResult result;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    if (!idempotency_key.empty()) {
      // Serializes concurrent submissions of one key, so the loser sees the winner's sweep.
      txn.exec_params("SELECT pg_advisory_xact_lock(hashtext($1))", idempotency_key);
      pqxx::result existing =
          txn.exec_params("SELECT id FROM sweeps WHERE idempotency_key = $1", idempotency_key);
      if (!existing.empty()) {
        auto sweep = LoadSweep(txn, existing[0][0].as<int64_t>());
        if (!sweep.ok()) return sweep.status();
        // A retry repeats the same request; the same key on another sweep is a client bug
        // that would otherwise silently drop the new sweep.
        if (!google::protobuf::util::MessageDifferencer::Equals(sweep->spec(), spec)) {
          return absl::FailedPreconditionError(
              absl::StrCat("idempotency_key \"", idempotency_key, "\" was already used for sweep ",
                           sweep->id(), " (", sweep->name(), ") with a different manifest"));
        }
        result.sweep = *std::move(sweep);
        result.created = false;
        return absl::OkStatus();
      }
    }
    int64_t project_id =
        txn.exec_params1(
               "INSERT INTO projects (name) VALUES ($1) "
               "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
               spec.project())[0]
            .as<int64_t>();
    int64_t sweep_id =
        txn.exec_params1(
               "INSERT INTO sweeps (project_id, name, kind, state, spec, manifest, "
               "idempotency_key, priority) VALUES ($1, $2, $3, 'RUNNING', $4::jsonb, $5, "
               "NULLIF($6, ''), COALESCE(NULLIF($7, ''), 'normal')) RETURNING id",
               project_id, spec.name(), RunKindName(spec.kind()), internal::ToJson(spec), manifest,
               idempotency_key, spec.priority())[0]
            .as<int64_t>();
    const int max_attempts =
        spec.max_attempts() > 0 ? spec.max_attempts() : runspec::kDefaultMaxAttempts;
    const std::string main_stage = spec.stage().empty() ? "main" : spec.stage();
    // Parents come before their children (the store fills in the child's init.from_run).
    for (size_t pos = 0; pos < runs.size(); ++pos) {
      if (runs[pos].parent_index >= static_cast<int>(pos)) {
        return absl::InvalidArgumentError(absl::StrCat("run ", runs[pos].index, ": parent_index ",
                                                       runs[pos].parent_index,
                                                       " names no earlier run of the sweep"));
      }
    }
    // Ids first, so that the rows go in by COPY (it has no RETURNING) and a child's row can name
    // its parent in the same stream. COPY parses each row once; the INSERT ... SELECT FROM
    // jsonb_to_recordset it replaces parsed each batch as one document and then copied every
    // config out of it (bench/README.md, scalelab-submit-bench).
    std::vector<int64_t> run_ids;  // of runs[i]
    run_ids.reserve(runs.size());
    if (!runs.empty()) {
      for (const auto& row :
           txn.exec_params("SELECT nextval('runs_id_seq') FROM generate_series(1, $1)",
                           static_cast<int64_t>(runs.size()))) {
        run_ids.push_back(row[0].as<int64_t>());
      }
    }
    {
      pqxx::stream_to copy(
          txn, "runs",
          std::vector<std::string>{"id", "sweep_id", "run_index", "state", "config", "overrides",
                                   "max_attempts", "config_pb", "kind", "stage", "parent_run_id"});
      const std::string sweep_text = absl::StrCat(sweep_id);
      const std::string pending = "PENDING";
      const std::string default_attempts = absl::StrCat(max_attempts);
      const std::string spec_kind = RunKindName(spec.kind());
      v1::RunConfig child_config;  // a pipeline child's config with its parent filled in
      for (size_t pos = 0; pos < runs.size(); ++pos) {
        const NewRun& run = runs[pos];
        const v1::RunConfig* config = &run.config;
        std::string parent;
        if (run.parent_index >= 0) {
          // The pipeline's link: the child starts from its parent's final weights.
          const int64_t parent_id = run_ids[run.parent_index];
          child_config = run.config;
          child_config.mutable_init()->set_from_run(parent_id);
          config = &child_config;
          parent = absl::StrCat(parent_id);
        }
        const std::string id = absl::StrCat(run_ids[pos]);
        const std::string index = absl::StrCat(run.index);
        const std::string config_json = internal::FastToJson(*config);
        const std::string overrides = internal::OverridesToJson(run.overrides);
        const std::string attempts =
            run.max_attempts > 0 ? absl::StrCat(run.max_attempts) : default_attempts;
        // bytea's hex input form ("\x..."); stream_to escapes the backslash for COPY.
        const std::string config_pb =
            absl::StrCat("\\x", absl::BytesToHexString(config->SerializeAsString()));
        const std::string kind =
            run.kind == v1::RUN_KIND_UNSPECIFIED ? spec_kind : std::string(RunKindName(run.kind));
        const std::string& stage = run.stage.empty() ? main_stage : run.stage;
        if (parent.empty()) {
          copy << std::forward_as_tuple(id, sweep_text, index, pending, config_json, overrides,
                                        attempts, config_pb, kind, stage, nullptr);
        } else {
          copy << std::tie(id, sweep_text, index, pending, config_json, overrides, attempts,
                           config_pb, kind, stage, parent);
        }
      }
      copy.complete();
    }
    if (!runs.empty()) {
      // One notification for the sweep instead of the trigger's join of 100,000 transitions
      // with runs (migration 0013); the trigger runs as usual for everything else.
      txn.exec("SET LOCAL scalelab.skip_run_notify = 'on'");
      txn.exec_params(
          "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
          "SELECT unnest($1::bigint[]), 0, '', 'PENDING', 'submitted'",
          internal::Int64ArrayLiteral(run_ids));
      txn.exec("SET LOCAL scalelab.skip_run_notify = 'off'");
      txn.exec_params("SELECT pg_notify('scalelab_runs', $1)", absl::StrCat(sweep_id, " PENDING"));
    }
    for (size_t pos = 0; pos < runs.size(); ++pos) {
      if (!runs[pos].search_operator.empty()) {
        internal::InsertSearchNode(txn, run_ids[pos], sweep_id, runs[pos], 0);
      }
    }
    if (spec.sweep().has_search()) {
      txn.exec_params("UPDATE sweeps SET search_open = true WHERE id = $1", sweep_id);
    }
    auto sweep = LoadSweep(txn, sweep_id);
    if (!sweep.ok()) return sweep.status();
    result.sweep = *std::move(sweep);
    result.created = true;
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<v1::Sweep> Store::GetSweep(int64_t sweep_id) {
  v1::Sweep sweep;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    auto loaded = LoadSweep(txn, sweep_id);
    if (!loaded.ok()) return loaded.status();
    sweep = *std::move(loaded);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return sweep;
}

absl::StatusOr<std::vector<v1::Sweep>> Store::ListSweeps(const std::string& project, int limit) {
  std::vector<v1::Sweep> sweeps;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    pqxx::result rows =
        txn.exec_params(absl::StrCat("SELECT ", kSweepColumns,
                                     " FROM sweeps s JOIN projects p ON p.id = s.project_id "
                                     "WHERE ($1 = '' OR p.name = $1) ORDER BY s.id DESC LIMIT $2"),
                        project, limit > 0 ? limit : 100);
    for (const auto& row : rows) {
      auto sweep = SweepFromRow(row);
      if (!sweep.ok()) return sweep.status();
      AddRunCounts(txn, &*sweep);
      sweeps.push_back(*std::move(sweep));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return sweeps;
}

absl::StatusOr<std::vector<v1::Run>> Store::ListRuns(int64_t sweep_id, v1::RunState state,
                                                     int limit) {
  absl::StatusOr<RunPage> page = ListRunsPage(sweep_id, state, limit, "");
  if (!page.ok()) return page.status();
  return std::move(page->runs);
}

namespace {

// A page token names the last run of the page before: "<sweep_id>.<run_index>", the key of the
// (sweep_id, run_index) order, so a page starts where the last ended even while runs change
// state, and costs an index range scan rather than an OFFSET.
struct RunKey {
  int64_t sweep_id = 0;
  int64_t run_index = -1;
};

absl::StatusOr<RunKey> ParsePageToken(const std::string& token) {
  RunKey key;
  if (token.empty()) return key;
  std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &key.sweep_id) ||
      !absl::SimpleAtoi(parts[1], &key.run_index) || key.sweep_id < 0 || key.run_index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: expected the next_page_token of an earlier answer, got \"",
                     absl::CHexEscape(token.substr(0, 40)), token.size() > 40 ? "\"..." : "\""));
  }
  return key;
}

}  // namespace

absl::StatusOr<RunPage> Store::ListRunsPage(int64_t sweep_id, v1::RunState state, int page_size,
                                            const std::string& page_token) {
  absl::StatusOr<RunKey> after = ParsePageToken(page_token);
  if (!after.ok()) return after.status();
  const int size = page_size <= 0 ? kMaxRunPageSize : std::min(page_size, kMaxRunPageSize);
  const std::string state_name = state == v1::RUN_STATE_UNSPECIFIED ? "" : RunStateName(state);
  RunPage page;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    page = RunPage();  // the body may run again
    if (sweep_id != 0 && txn.exec_params("SELECT 1 FROM sweeps WHERE id = $1", sweep_id).empty()) {
      return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " does not exist"));
    }
    constexpr char kFilter[] = "($1 = 0 OR r.sweep_id = $1) AND ($2 = '' OR r.state = $2)";
    page.total_count = txn.exec_params1(absl::StrCat("SELECT count(*) FROM runs r WHERE ", kFilter),
                                        sweep_id, state_name)[0]
                           .as<int64_t>();
    // One extra row says whether another page follows.
    pqxx::result rows =
        txn.exec_params(absl::StrCat("SELECT ", kRunColumns, " FROM ", kRunFrom, " WHERE ", kFilter,
                                     " AND (r.sweep_id, r.run_index) > ($3, $4)"
                                     " ORDER BY r.sweep_id, r.run_index LIMIT $5"),
                        sweep_id, state_name, after->sweep_id, after->run_index, size + 1);
    for (const auto& row : rows) {
      if (static_cast<int>(page.runs.size()) == size) {
        const v1::Run& last = page.runs.back();
        page.next_page_token = absl::StrCat(last.sweep_id(), ".", last.index());
        break;
      }
      auto run = RunFromRow(row);
      if (!run.ok()) return run.status();
      page.runs.push_back(*std::move(run));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return page;
}

absl::StatusOr<v1::Run> Store::GetRun(int64_t run_id) {
  v1::Run run;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    pqxx::result rows = txn.exec_params(
        absl::StrCat("SELECT ", kRunColumns, " FROM ", kRunFrom, " WHERE r.id = $1"), run_id);
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    auto loaded = RunFromRow(rows[0]);
    if (!loaded.ok()) return loaded.status();
    run = *std::move(loaded);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return run;
}

absl::StatusOr<v1::Sweep> Store::CancelSweep(int64_t sweep_id, const std::string& reason) {
  v1::Sweep sweep;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    pqxx::result locked =
        txn.exec_params("SELECT state FROM sweeps WHERE id = $1 FOR UPDATE", sweep_id);
    if (locked.empty()) {
      return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " does not exist"));
    }
    pqxx::result active = txn.exec_params(
        "SELECT id, attempt, state FROM runs WHERE sweep_id = $1 "
        "AND state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED') ORDER BY id FOR UPDATE",
        sweep_id);
    std::string why = reason.empty() ? "cancelled by user" : absl::StrCat("cancelled: ", reason);
    for (const auto& row : active) {
      auto from = ParseRunState(row[2].as<std::string>());
      if (!from.ok()) return from.status();
      int64_t run_id = row[0].as<int64_t>();
      int32_t attempt = row[1].as<int32_t>();
      RecordTransition(txn, run_id, attempt, *from, v1::RUN_STATE_CANCELLED, why);
      txn.exec_params(
          "UPDATE runs SET failure_class = 'CANCELLED', message = $2, lease_expires_at = NULL "
          "WHERE id = $1",
          run_id, why);
      txn.exec_params(
          "UPDATE run_attempts SET state = 'CANCELLED', ended_at = now(), "
          "failure_class = 'CANCELLED', message = $3 "
          "WHERE run_id = $1 AND attempt = $2 AND ended_at IS NULL",
          run_id, attempt, why);
    }
    if (locked[0][0].as<std::string>() == "RUNNING" || !active.empty()) {
      txn.exec_params("UPDATE sweeps SET state = 'CANCELLED', updated_at = now() WHERE id = $1",
                      sweep_id);
    }
    auto loaded = LoadSweep(txn, sweep_id);
    if (!loaded.ok()) return loaded.status();
    sweep = *std::move(loaded);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return sweep;
}

absl::StatusOr<v1::GetRunMetricsResponse> Store::GetRunMetrics(
    int64_t run_id, const std::vector<std::string>& names) {
  v1::GetRunMetricsResponse response;
  response.set_run_id(run_id);
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    if (txn.exec_params("SELECT 1 FROM runs WHERE id = $1", run_id).empty()) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " does not exist"));
    }
    std::string filter;
    for (const std::string& name : names) {
      absl::StrAppend(&filter, filter.empty() ? "" : ",", txn.quote(name));
    }
    pqxx::result rows = txn.exec_params(
        absl::StrCat("SELECT attempt, name, step, tokens, value, wall_time_s FROM metric_points "
                     "WHERE run_id = $1",
                     filter.empty() ? "" : absl::StrCat(" AND name IN (", filter, ")"),
                     " ORDER BY attempt, name, step"),
        run_id);
    v1::MetricSeries* series = nullptr;
    for (const auto& row : rows) {
      int32_t attempt = row[0].as<int32_t>();
      std::string name = row[1].as<std::string>();
      if (series == nullptr || series->attempt() != attempt || series->name() != name) {
        series = response.add_series();
        series->set_attempt(attempt);
        series->set_name(name);
      }
      v1::MetricPoint* point = series->add_points();
      point->set_name(name);
      point->set_step(row[2].as<int64_t>());
      point->set_tokens(row[3].as<double>());
      point->set_value(row[4].as<double>());
      point->set_wall_time_s(row[5].as<double>());
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return response;
}

absl::StatusOr<std::vector<v1::RunCurve>> Store::GetSweepCurves(int64_t sweep_id,
                                                                const std::string& metric,
                                                                int max_points) {
  if (max_points < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_points: expected 0 (every point) or a positive count, got ", max_points));
  }
  std::vector<v1::RunCurve> curves;
  const std::string name = metric.empty() ? "val_loss" : metric;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    curves.clear();  // a retried transaction starts over
    // Runs and points from one snapshot, so each curve is of the attempt its run shows.
    txn.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (txn.exec_params("SELECT 1 FROM sweeps WHERE id = $1", sweep_id).empty()) {
      return absl::NotFoundError(absl::StrCat("sweep ", sweep_id, " does not exist"));
    }
    pqxx::result runs = txn.exec_params(absl::StrCat("SELECT ", kRunColumns, " FROM ", kRunFrom,
                                                     " WHERE r.sweep_id = $1 ORDER BY r.run_index"),
                                        sweep_id);
    curves.resize(runs.size());
    for (size_t i = 0; i < runs.size(); ++i) {
      auto run = RunFromRow(runs[i]);
      if (!run.ok()) return run.status();
      *curves[i].mutable_run() = *std::move(run);
    }
    // Every run's points in one query: per run (in run_index order, from the runs' key) an
    // index range scan of metric_points' key (run, attempt, name, step), already in step order,
    // so nothing is sorted but each run's few points. With max_points = m below a curve's n
    // points, the kept rows i (0-based, in step order) are 0 and the first row of each of the
    // m - 1 buckets floor(i (m - 1) / (n - 1)): exactly m, evenly spaced, the last point the
    // last bucket's. m = 1 keeps the last point only, the final value of the run.
    constexpr char kPoints[] =
        "SELECT m.step, m.tokens, m.value, m.wall_time_s FROM metric_points m "
        "WHERE m.run_id = r.id AND m.attempt = r.attempt AND m.name = $2";
    const std::string points_of_run =
        max_points == 0
            ? absl::StrCat(kPoints, " OFFSET 0")  // OFFSET 0: a per-run scan, not a hash join
            : absl::StrCat(
                  "SELECT k.step, k.tokens, k.value, k.wall_time_s FROM (SELECT w.*, "
                  "row_number() OVER (ORDER BY w.step) - 1 AS i, count(*) OVER () AS n FROM (",
                  kPoints,
                  ") w) k WHERE k.n <= $3 OR k.i = k.n - 1 OR ($3 > 1 AND (k.i = 0 OR "
                  "(k.i * ($3 - 1)) / (k.n - 1) > ((k.i - 1) * ($3 - 1)) / (k.n - 1)))");
    // Planned at thousands of runs, this query's cost estimate would switch on JIT compilation,
    // which costs more than it saves here.
    txn.exec("SET LOCAL jit = off");
    const std::string points_sql = absl::StrCat(
        "SELECT r.id, p.step, p.tokens, p.value, p.wall_time_s FROM runs r "
        "CROSS JOIN LATERAL (",
        points_of_run, ") p WHERE r.sweep_id = $1 ORDER BY r.run_index, p.step");
    pqxx::result points = max_points == 0 ? txn.exec_params(points_sql, sweep_id, name)
                                          : txn.exec_params(points_sql, sweep_id, name, max_points);
    // Points come in the curves' order (run_index), so the curves are walked once.
    size_t next_curve = 0;
    v1::RunCurve* curve = nullptr;
    for (const auto& row : points) {
      // Fields through one iterator: each row[i] would copy the result's shared pointers.
      const char* text[5];
      auto field = row.begin();
      for (const char*& column : text) {
        column = field->c_str();
        ++field;
      }
      int64_t run_id = 0, step = 0;
      double tokens = 0, value = 0, wall_time_s = 0;
      // from_chars rather than pqxx's stream-based conversions: a sweep's curves are many rows.
      if (!absl::SimpleAtoi(text[0], &run_id) || !absl::SimpleAtoi(text[1], &step) ||
          !internal::ParseFloat8(text[2], &tokens) || !internal::ParseFloat8(text[3], &value) ||
          !internal::ParseFloat8(text[4], &wall_time_s)) {
        return absl::InternalError(
            absl::StrCat("metric_points: unreadable row of run ", text[0], " step ", text[1]));
      }
      if (curve == nullptr || run_id != curve->run().id()) {
        while (next_curve < curves.size() && curves[next_curve].run().id() != run_id) {
          ++next_curve;
        }
        if (next_curve == curves.size()) {
          return absl::InternalError(absl::StrCat("points of run ", run_id, " out of run order"));
        }
        curve = &curves[next_curve++];
      }
      v1::MetricPoint* point = curve->add_points();
      point->set_name(name);
      point->set_step(step);
      point->set_tokens(tokens);
      point->set_value(value);
      point->set_wall_time_s(wall_time_s);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return curves;
}

absl::StatusOr<StoreCounts> Store::Counts() {
  StoreCounts counts;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    for (const auto& row : txn.exec("SELECT state, count(*) FROM runs GROUP BY state")) {
      counts.runs_by_state[row[0].as<std::string>()] = row[1].as<int64_t>();
    }
    for (const auto& row : txn.exec("SELECT state, count(*) FROM workers GROUP BY state")) {
      counts.workers_by_state[row[0].as<std::string>()] = row[1].as<int64_t>();
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return counts;
}

}  // namespace scalelab::services
