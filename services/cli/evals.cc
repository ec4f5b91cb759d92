#include "services/cli/evals.h"

#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/cli/calls.h"
#include "services/cli/format.h"

namespace scalelab::cli {
namespace {

std::string StageName(const std::map<int64_t, std::string>& stages, int64_t run_id) {
  auto stage = stages.find(run_id);
  return stage == stages.end() ? "?" : stage->second;
}

}  // namespace

absl::Status EvalsOptions::Validate() const {
  if ((run_id > 0) == (sweep_id > 0) || run_id < 0 || sweep_id < 0) {
    return absl::InvalidArgumentError(absl::StrCat("expected one run id or one sweep id, got run ",
                                                   run_id, " and sweep ", sweep_id));
  }
  if (!format.empty() && format != "table" && format != "csv" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format: expected table, csv or json, got \"", format, "\""));
  }
  return absl::OkStatus();
}

TidyTable EvalTable(const v1::GetEvalsResponse& response,
                    const std::map<int64_t, std::string>* stages) {
  TidyTable table;
  table.columns = {"run_id", "attempt", "step",  "task_set", "split", "category", "metric",
                   "n",      "k",       "value", "low",      "high",  "problems"};
  if (stages != nullptr) table.columns.insert(table.columns.begin() + 1, "stage");
  const double missing = std::numeric_limits<double>::quiet_NaN();
  for (const v1::EvalResult& eval : response.evals()) {
    table.rows.push_back({eval.run_id(), static_cast<int64_t>(eval.attempt()), eval.step(),
                          eval.task_set(), eval.split(), eval.category(), eval.metric(),
                          static_cast<int64_t>(eval.n()), static_cast<int64_t>(eval.k()),
                          eval.value(), eval.has_low() ? eval.low() : missing,
                          eval.has_high() ? eval.high() : missing, eval.problems()});
    if (stages != nullptr) {
      table.rows.back().insert(table.rows.back().begin() + 1, StageName(*stages, eval.run_id()));
    }
  }
  return table;
}

void PrintEvalsTable(std::ostream& out, const v1::GetEvalsResponse& response, bool show_attempt,
                     const std::map<int64_t, std::string>* stages) {
  std::vector<std::string> header = {"RUN",    "STEP", "TASK_SET",          "SPLIT", "CATEGORY",
                                     "METRIC", "K",    "VALUE [LOW, HIGH]", "N",     "PROBLEMS"};
  if (show_attempt) header.insert(header.begin() + 1, "ATTEMPT");
  if (stages != nullptr) header.insert(header.begin() + 1, "STAGE");
  std::vector<std::vector<std::string>> rows;
  for (const v1::EvalResult& eval : response.evals()) {
    std::string value = Short(eval.value());
    if (eval.has_low() && eval.has_high()) {
      absl::StrAppend(&value, " [", Short(eval.low()), ", ", Short(eval.high()), "]");
    }
    std::vector<std::string> row = {absl::StrCat(eval.run_id()),
                                    absl::StrCat(eval.step()),
                                    eval.task_set(),
                                    eval.split(),
                                    eval.category().empty() ? "(all)" : eval.category(),
                                    eval.metric(),
                                    absl::StrCat(eval.k()),
                                    value,
                                    absl::StrCat(eval.n()),
                                    absl::StrCat(eval.problems())};
    if (show_attempt) row.insert(row.begin() + 1, absl::StrCat(eval.attempt()));
    if (stages != nullptr) row.insert(row.begin() + 1, StageName(*stages, eval.run_id()));
    rows.push_back(std::move(row));
  }
  PrintTable(out, header, rows);
}

int Evals(CliContext& cli, const EvalsOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) {
    *cli.err << "scalelab: evals: " << status.message() << "\n";
    return 2;
  }
  v1::GetEvalsRequest request;
  request.set_run_id(options.run_id);
  request.set_sweep_id(options.sweep_id);
  request.set_task_set(options.task_set);
  request.set_split(options.split);
  request.set_metric(options.metric);
  request.set_all_attempts(options.all_attempts);
  v1::GetEvalsResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.results->GetEvals(&context, request, &response);
  if (!status.ok()) return Fail(cli, "evals", status);
  // A sweep's results come from runs of several pipeline stages; say which stage each run is.
  std::map<int64_t, std::string> stages;
  const std::map<int64_t, std::string>* stage_column = nullptr;
  if (options.sweep_id > 0 && !response.evals().empty()) {
    v1::ListRunsRequest list;
    list.set_sweep_id(options.sweep_id);
    RunListing listing;
    status = FetchRuns(cli, list, /*all_runs=*/true, &listing);
    if (!status.ok()) return Fail(cli, "evals", status);
    for (const v1::Run& run : listing.runs) stages[run.id()] = StageOf(run);
    stage_column = &stages;
  }
  if (options.format == "csv") {
    WriteCsv(*cli.out, EvalTable(response, stage_column));
  } else if (options.format == "json") {
    WriteJson(*cli.out, EvalTable(response, stage_column));
  } else if (options.format.empty() && cli.output == OutputFormat::kJson) {
    *cli.out << Json(response) << "\n";
  } else if (response.evals().empty()) {
    *cli.out << (options.run_id > 0 ? absl::StrCat("run ", options.run_id)
                                    : absl::StrCat("sweep ", options.sweep_id))
             << " has no evaluation results"
             << (options.task_set.empty() && options.split.empty() && options.metric.empty()
                     ? ""
                     : " matching the filters")
             << "\n";
  } else {
    PrintEvalsTable(*cli.out, response, options.all_attempts, stage_column);
  }
  return 0;
}

}  // namespace scalelab::cli
