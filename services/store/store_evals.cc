// Evaluation results: written by ReportEvals under the same attempt fence as artifacts, read by
// run or by sweep. Rows are keyed by (run, attempt, step, task_set, split, category, metric, k);
// a re-sent result replaces its row (ON CONFLICT DO UPDATE), so retries never duplicate.
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runspec/eval_result.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"

namespace scalelab::services {
namespace {

// Answers larger than this are refused rather than sent: about 100 bytes a row keeps the answer
// near 2 MB, below gRPC's 4 MB default.
constexpr int kMaxEvalRows = 20000;

// One batch as the arrays the INSERT unnests. Results with the same key keep the last one:
// ON CONFLICT DO UPDATE may not touch a row twice in one statement.
struct EvalArrays {
  std::string steps = "{", task_sets = "{", splits = "{", categories = "{", metrics = "{", ks = "{",
              ns = "{", values = "{", lows = "{", highs = "{", problems = "{";
  int rows = 0;
};

EvalArrays ToArrays(const v1::ReportEvalsRequest& request) {
  using Key = std::tuple<int64_t, std::string, std::string, std::string, std::string, int32_t>;
  std::map<Key, const v1::EvalResult*> last;
  for (const v1::EvalResult& eval : request.evals()) {
    last[Key(eval.step(), eval.task_set(), eval.split(), eval.category(), eval.metric(),
             eval.k())] = &eval;
  }
  EvalArrays arrays;
  std::vector<std::string*> all = {&arrays.steps,      &arrays.task_sets, &arrays.splits,
                                   &arrays.categories, &arrays.metrics,   &arrays.ks,
                                   &arrays.ns,         &arrays.values,    &arrays.lows,
                                   &arrays.highs,      &arrays.problems};
  for (const auto& [key, eval] : last) {
    if (arrays.rows++ > 0) {
      for (std::string* array : all) array->push_back(',');
    }
    absl::StrAppend(&arrays.steps, eval->step());
    internal::AppendArrayTextElement(&arrays.task_sets, eval->task_set());
    internal::AppendArrayTextElement(&arrays.splits, eval->split());
    internal::AppendArrayTextElement(&arrays.categories, eval->category());
    internal::AppendArrayTextElement(&arrays.metrics, eval->metric());
    absl::StrAppend(&arrays.ks, eval->k());
    absl::StrAppend(&arrays.ns, eval->n());
    internal::AppendFloat8Text(&arrays.values, eval->value());
    if (eval->has_low()) {
      internal::AppendFloat8Text(&arrays.lows, eval->low());
      internal::AppendFloat8Text(&arrays.highs, eval->high());
    } else {
      absl::StrAppend(&arrays.lows, "NULL");
      absl::StrAppend(&arrays.highs, "NULL");
    }
    absl::StrAppend(&arrays.problems, eval->problems());
  }
  for (std::string* array : all) array->push_back('}');
  return arrays;
}

v1::EvalResult EvalFromRow(const pqxx::row& row) {
  v1::EvalResult eval;
  eval.set_run_id(row[0].as<int64_t>());
  eval.set_attempt(row[1].as<int32_t>());
  eval.set_step(row[2].as<int64_t>());
  eval.set_task_set(row[3].as<std::string>());
  eval.set_split(row[4].as<std::string>());
  eval.set_category(row[5].as<std::string>());
  eval.set_metric(row[6].as<std::string>());
  eval.set_n(row[7].as<int32_t>());
  eval.set_k(row[8].as<int32_t>());
  eval.set_value(row[9].as<double>());
  if (!row[10].is_null()) eval.set_low(row[10].as<double>());
  if (!row[11].is_null()) eval.set_high(row[11].as<double>());
  eval.set_problems(row[12].as<int64_t>());
  const absl::Time created = internal::TimeFromEpoch(row[13].as<double>());
  eval.mutable_created_at()->set_seconds(absl::ToUnixSeconds(created));
  eval.mutable_created_at()->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(created - absl::FromUnixSeconds(absl::ToUnixSeconds(created)))));
  return eval;
}

}  // namespace

absl::StatusOr<int> Store::ReportEvals(const v1::ReportEvalsRequest& request) {
  // Checked whole before anything is written: a bad result refuses the batch, and what is
  // stored stays as it was.
  if (absl::Status status = runspec::ValidateEvalResults(request.evals()); !status.ok()) {
    return status;
  }
  const EvalArrays arrays = ToArrays(request);
  int stored = 0;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    stored = 0;  // a retried transaction starts over
    pqxx::result run = txn.exec_params(
        "SELECT attempt, COALESCE(worker_id, 0), state, sweep_id, lease_token FROM runs WHERE id = "
        "$1 "
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
    const std::string state = run[0][2].as<std::string>();
    if (run[0][0].as<int32_t>() != request.attempt() ||
        run[0][1].as<int64_t>() != request.worker_id() || request.worker_id() <= 0 ||
        (state != "LEASED" && state != "RUNNING")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", request.run_id(), " attempt ", request.attempt(), " on worker ",
          request.worker_id(), " is not current (current: attempt ", run[0][0].as<int32_t>(),
          " on worker ", run[0][1].as<int64_t>(), ", state ", state, ")"));
    }
    if (arrays.rows == 0) return absl::OkStatus();
    stored = static_cast<int>(
        txn.exec_params(
               "INSERT INTO evals (run_id, sweep_id, attempt, step, task_set, split, category, "
               "metric, k, n, value, low, high, problems) "
               "SELECT $1, $2, $3, e.* FROM unnest($4::bigint[], $5::text[], $6::text[], "
               "$7::text[], $8::text[], $9::int[], $10::int[], $11::float8[], $12::float8[], "
               "$13::float8[], $14::bigint[]) AS e "
               "ON CONFLICT (run_id, attempt, step, task_set, split, category, metric, k) "
               "DO UPDATE SET n = EXCLUDED.n, value = EXCLUDED.value, low = EXCLUDED.low, "
               "high = EXCLUDED.high, problems = EXCLUDED.problems, created_at = now()",
               request.run_id(), run[0][3].as<int64_t>(), request.attempt(), arrays.steps,
               arrays.task_sets, arrays.splits, arrays.categories, arrays.metrics, arrays.ks,
               arrays.ns, arrays.values, arrays.lows, arrays.highs, arrays.problems)
            .affected_rows());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return stored;
}

absl::StatusOr<std::vector<v1::EvalResult>> Store::GetEvals(const v1::GetEvalsRequest& request) {
  if ((request.run_id() > 0) == (request.sweep_id() > 0) || request.run_id() < 0 ||
      request.sweep_id() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("run_id, sweep_id: expected exactly one positive id, got run_id ",
                     request.run_id(), " and sweep_id ", request.sweep_id()));
  }
  const bool by_run = request.run_id() > 0;
  const int64_t id = by_run ? request.run_id() : request.sweep_id();
  std::vector<v1::EvalResult> evals;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    evals.clear();
    if (txn.exec_params(
               by_run ? "SELECT 1 FROM runs WHERE id = $1" : "SELECT 1 FROM sweeps WHERE id = $1",
               id)
            .empty()) {
      return absl::NotFoundError(absl::StrCat(by_run ? "run " : "sweep ", id, " does not exist"));
    }
    // Without all_attempts, DISTINCT ON keeps the first row of each key in the ORDER BY, i.e.
    // the latest attempt's.
    const char* const kKey = "run_id, step, task_set, split, category, metric, k";
    pqxx::result rows = txn.exec_params(
        absl::StrCat(
            "SELECT ", request.all_attempts() ? "" : absl::StrCat("DISTINCT ON (", kKey, ") "),
            "run_id, attempt, step, task_set, split, category, metric, n, k, value, low, high, "
            "problems, extract(epoch FROM created_at)::float8 FROM evals WHERE ",
            by_run ? "run_id" : "sweep_id",
            " = $1 AND ($2::text = '' OR task_set = $2::text) AND "
            "($3::text = '' OR split = $3::text) AND ($4::text = '' OR metric = $4::text) "
            "ORDER BY ",
            kKey, request.all_attempts() ? ", attempt" : ", attempt DESC", " LIMIT $5"),
        id, request.task_set(), request.split(), request.metric(), kMaxEvalRows + 1);
    if (rows.size() > static_cast<size_t>(kMaxEvalRows)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "more than ", kMaxEvalRows,
          " evaluation results match; narrow the request with task_set, split or metric"));
    }
    evals.reserve(rows.size());
    for (const pqxx::row& row : rows) evals.push_back(EvalFromRow(row));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return evals;
}

}  // namespace scalelab::services
