#include "services/cli/predict.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "services/cli/calls.h"
#include "services/cli/format.h"

namespace scalelab::cli {
namespace {

using analysis::PredictorReport;
using analysis::PredictorResult;
using KValues = std::map<int, double>;  // k -> pass@k

constexpr char kTarget[] = "rl_pass@1";

// The results of one run at the last step it was evaluated at.
struct FinalEvals {
  int64_t step = -1;
  KValues pass_at;
  std::map<int, int> attempt_of;  // k -> the attempt its value came from
};

std::string StateName(v1::RunState state) {
  return std::string(absl::StripPrefix(v1::RunState_Name(state), "RUN_STATE_"));
}

std::string WithInterval(const analysis::Estimate& estimate) {
  std::string text = Short(estimate.value);
  if (std::isfinite(estimate.lo) && std::isfinite(estimate.hi)) {
    absl::StrAppend(&text, " [", Short(estimate.lo), ", ", Short(estimate.hi), "]");
  }
  return text;
}

// "0.68 + 0.463 sft_pass@1 - 0.2493 gen_loss".
std::string FittedLine(const PredictorResult& result) {
  std::string line = Short(result.fit.coefficients[0]);
  for (size_t j = 0; j < result.proxies.size(); ++j) {
    const double slope = result.fit.coefficients[j + 1];
    absl::StrAppend(&line, slope < 0 ? " - " : " + ", Short(std::abs(slope)), " ",
                    result.proxies[j]);
  }
  return line;
}

std::string RankByWords(analysis::RankBy rank_by) {
  switch (rank_by) {
    case analysis::RankBy::kLooR2:
      return "leave-one-out R² (in-sample R² always favours more proxies)";
    case analysis::RankBy::kAdjustedR2:
      return "adjusted R²";
    case analysis::RankBy::kSpearman:
      return "Spearman's rho of predicted against actual";
  }
  return "?";
}

}  // namespace

absl::Status PredictOptions::Validate() const {
  if ((sweep_id > 0) == !points_path.empty() || sweep_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a sweep id or --points FILE.csv (one of them), got sweep ", sweep_id,
                     " and --points \"", points_path.substr(0, 80), "\""));
  }
  if (!format.empty() && format != "table" && format != "csv" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format: expected table, csv or json, got \"", format.substr(0, 80), "\""));
  }
  if (!points_out.empty() && !points_path.empty()) {
    return absl::InvalidArgumentError(
        "--points_out: writes a sweep's points; with --points the file is already there");
  }
  if (absl::Status status = predictor.Validate(); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", status.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<AssembledPoints> AssembleProxyTable(
    const std::vector<v1::Run>& runs,
    const std::map<int64_t, std::vector<v1::MetricPoint>>& gen_loss_by_run,
    const v1::GetEvalsResponse& evals, const std::string& task_set) {
  AssembledPoints assembled;
  std::map<int64_t, std::vector<const v1::Run*>> children;
  std::vector<const v1::Run*> sft_runs;
  for (const v1::Run& run : runs) {
    if (run.parent_run_id() != 0) children[run.parent_run_id()].push_back(&run);
    if (run.kind() == v1::RUN_KIND_SFT) sft_runs.push_back(&run);
  }
  if (sft_runs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "none of the ", runs.size(), " runs is an SFT run (kind: sft): nothing to predict from"));
  }
  std::sort(sft_runs.begin(), sft_runs.end(),
            [](const v1::Run* a, const v1::Run* b) { return a->id() < b->id(); });

  // Test-split pass@k of the whole set, of one task set.
  std::set<std::string> task_sets;
  std::vector<const v1::EvalResult*> usable;
  for (const v1::EvalResult& eval : evals.evals()) {
    if (eval.split() != "test" || !eval.category().empty() || eval.metric() != "pass@k") continue;
    if (!task_set.empty() && eval.task_set() != task_set) continue;
    task_sets.insert(eval.task_set());
    usable.push_back(&eval);
  }
  if (task_sets.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no pass@k result on the test split",
                     task_set.empty() ? "" : absl::StrCat(" of task set \"", task_set, "\""),
                     ": the SFT and GRPO runs need evaluations (eval.tasks in the manifest)"));
  }
  if (task_sets.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the test pass@k results are of several task sets (",
                     absl::StrJoin(task_sets, ", "), "): choose one with --task_set"));
  }
  assembled.task_set = *task_sets.begin();

  std::map<int64_t, FinalEvals> final_evals;
  for (const v1::EvalResult* eval : usable) {
    FinalEvals& final = final_evals[eval->run_id()];
    if (eval->step() < final.step) continue;
    if (eval->step() > final.step) final = FinalEvals{eval->step(), {}, {}};
    auto attempt = final.attempt_of.find(eval->k());
    if (attempt != final.attempt_of.end() && attempt->second > eval->attempt()) continue;
    final.pass_at[eval->k()] = eval->value();
    final.attempt_of[eval->k()] = eval->attempt();
  }

  // A run's pass@k: its succeeded eval-kind children's (averaged per k), else its own.
  auto measured = [&](int64_t run_id) -> KValues {
    std::map<int, std::pair<double, int>> sums;  // k -> (sum, count)
    for (const v1::Run* child : children[run_id]) {
      if (child->kind() != v1::RUN_KIND_EVAL || child->state() != v1::RUN_STATE_SUCCEEDED) {
        continue;
      }
      auto found = final_evals.find(child->id());
      if (found == final_evals.end()) continue;
      for (const auto& [k, value] : found->second.pass_at) {
        sums[k].first += value;
        sums[k].second += 1;
      }
    }
    KValues values;
    for (const auto& [k, sum] : sums) values[k] = sum.first / sum.second;
    if (!values.empty()) return values;
    auto own = final_evals.find(run_id);
    return own == final_evals.end() ? KValues{} : own->second.pass_at;
  };

  struct Candidate {
    int64_t sft_run = 0;
    double target = 0;
    double gen_loss = 0;
    KValues sft_pass;
  };
  std::vector<Candidate> candidates;
  for (const v1::Run* sft : sft_runs) {
    const std::string who = absl::StrCat("SFT run ", sft->id());
    auto leave_out = [&](const std::string& why) {
      assembled.notes.push_back(absl::StrCat(who, ": ", why, ": left out"));
    };
    if (sft->state() != v1::RUN_STATE_SUCCEEDED) {
      leave_out(absl::StrCat("it is ", StateName(sft->state())));
      continue;
    }
    Candidate candidate;
    candidate.sft_run = sft->id();
    auto gen_loss = gen_loss_by_run.find(sft->id());
    if (gen_loss == gen_loss_by_run.end() || gen_loss->second.empty()) {
      leave_out("no gen_loss metric");
      continue;
    }
    const v1::MetricPoint& last = *std::max_element(
        gen_loss->second.begin(), gen_loss->second.end(),
        [](const v1::MetricPoint& a, const v1::MetricPoint& b) { return a.step() < b.step(); });
    if (!std::isfinite(last.value())) {
      leave_out(absl::StrCat("its final gen_loss is ", last.value()));
      continue;
    }
    candidate.gen_loss = last.value();
    candidate.sft_pass = measured(sft->id());
    if (candidate.sft_pass.count(1) == 0) {
      leave_out("no test pass@1 after SFT");
      continue;
    }
    double rl_sum = 0;
    int rl_count = 0;
    bool has_grpo_child = false;
    for (const v1::Run* child : children[sft->id()]) {
      if (child->kind() != v1::RUN_KIND_GRPO) continue;
      has_grpo_child = true;
      if (child->state() != v1::RUN_STATE_SUCCEEDED) {
        assembled.notes.push_back(absl::StrCat(who, ": GRPO run ", child->id(), " is ",
                                               StateName(child->state()), ": not counted"));
        continue;
      }
      const KValues rl = measured(child->id());
      auto pass1 = rl.find(1);
      if (pass1 == rl.end()) {
        assembled.notes.push_back(
            absl::StrCat(who, ": GRPO run ", child->id(), " has no test pass@1: not counted"));
        continue;
      }
      rl_sum += pass1->second;
      ++rl_count;
    }
    if (rl_count == 0) {
      leave_out(has_grpo_child ? "no GRPO child with a test pass@1" : "no GRPO child");
      continue;
    }
    candidate.target = rl_sum / rl_count;
    candidates.push_back(std::move(candidate));
  }

  // K: the largest k every point has, so that the proxy is the same measure on every run.
  std::set<int> common_k;
  int largest_k = 1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    std::set<int> ks;
    for (const auto& [k, value] : candidates[i].sft_pass) {
      ks.insert(k);
      largest_k = std::max(largest_k, k);
    }
    if (i == 0) {
      common_k = std::move(ks);
    } else {
      std::set<int> both;
      std::set_intersection(common_k.begin(), common_k.end(), ks.begin(), ks.end(),
                            std::inserter(both, both.begin()));
      common_k = std::move(both);
    }
  }
  assembled.max_k = common_k.empty() ? 1 : *common_k.rbegin();
  if (largest_k > assembled.max_k) {
    assembled.notes.push_back(absl::StrCat(
        "pass@", largest_k, " is not on every SFT run; the largest k on all is ", assembled.max_k));
  }
  if (!candidates.empty() && assembled.max_k == 1) {
    assembled.notes.push_back("the SFT runs were evaluated at k = 1 only: no pass@k proxy");
  }

  analysis::ProxyTable& table = assembled.table;
  table.target_name = kTarget;
  table.proxy_names = {"sft_pass@1", "gen_loss"};
  if (assembled.max_k > 1) table.proxy_names.push_back(absl::StrCat("sft_pass@", assembled.max_k));
  for (const Candidate& candidate : candidates) {
    analysis::ProxyPoint point;
    point.label = absl::StrCat(candidate.sft_run);
    point.target = candidate.target;
    point.proxies = {candidate.sft_pass.at(1), candidate.gen_loss};
    if (assembled.max_k > 1) point.proxies.push_back(candidate.sft_pass.at(assembled.max_k));
    table.points.push_back(std::move(point));
  }
  return assembled;
}

TidyTable PredictorTable(const PredictorReport& report,
                         const std::vector<std::string>& proxy_names) {
  TidyTable table;
  table.columns = {"rank",          "predictor",   "proxies",     "n",        "loo_r2",
                   "loo_r2_low",    "loo_r2_high", "r2",          "r2_low",   "r2_high",
                   "adj_r2",        "adj_r2_low",  "adj_r2_high", "spearman", "spearman_low",
                   "spearman_high", "resamples",   "intercept"};
  for (const std::string& name : proxy_names) table.columns.push_back("coef_" + name);
  const double missing = std::numeric_limits<double>::quiet_NaN();
  int64_t rank = 0;
  for (const PredictorResult& result : report.predictors) {
    std::vector<Cell> row = {++rank, absl::StrJoin(result.proxies, " + "),
                             static_cast<int64_t>(result.proxies.size()),
                             static_cast<int64_t>(result.fit.n)};
    for (const analysis::Estimate* estimate :
         {&result.loo_r2, &result.r2, &result.adjusted_r2, &result.spearman}) {
      row.insert(row.end(), {estimate->value, estimate->lo, estimate->hi});
    }
    row.push_back(static_cast<int64_t>(result.loo_r2.samples_used));
    row.push_back(result.fit.coefficients[0]);
    for (const std::string& name : proxy_names) {
      auto used = std::find(result.proxies.begin(), result.proxies.end(), name);
      row.push_back(used == result.proxies.end()
                        ? missing
                        : result.fit.coefficients[1 + (used - result.proxies.begin())]);
    }
    table.rows.push_back(std::move(row));
  }
  return table;
}

void PrintPredictorReport(std::ostream& out, const PredictorReport& report,
                          const std::string& source) {
  out << report.target_name << " of " << report.n_points << " SFT runs (" << source << ")\n";
  out << "ranked by " << RankByWords(report.rank_by);
  if (report.bootstrap > 0) {
    out << "; intervals: " << Short(report.confidence * 100) << "% bootstrap over the SFT runs, "
        << report.bootstrap << " resamples (RESAMPLES: those with enough distinct runs to fit)";
  }
  out << "\n\n";
  std::vector<std::vector<std::string>> rows;
  int rank = 0;
  for (const PredictorResult& result : report.predictors) {
    rows.push_back({absl::StrCat(++rank), absl::StrJoin(result.proxies, " + "),
                    WithInterval(result.loo_r2), WithInterval(result.r2),
                    Short(result.adjusted_r2.value), WithInterval(result.spearman),
                    absl::StrCat(result.loo_r2.samples_used), FittedLine(result)});
  }
  PrintTable(out,
             {"RANK", "PREDICTOR", "LOO_R2 [LOW, HIGH]", "R2 [LOW, HIGH]", "ADJ_R2",
              "SPEARMAN [LOW, HIGH]", "RESAMPLES", "FIT"},
             rows);
  if (!report.notes.empty()) {
    out << "\nnotes:\n";
    for (const std::string& note : report.notes) out << "  " << note << "\n";
  }
}

void WriteProxyTableCsv(std::ostream& out, const analysis::ProxyTable& table) {
  TidyTable tidy;
  tidy.columns = {"sft_run", "target"};
  tidy.columns.insert(tidy.columns.end(), table.proxy_names.begin(), table.proxy_names.end());
  for (const analysis::ProxyPoint& point : table.points) {
    std::vector<Cell> row = {point.label, point.target};
    row.insert(row.end(), point.proxies.begin(), point.proxies.end());
    tidy.rows.push_back(std::move(row));
  }
  WriteCsv(out, tidy);
}

int Predict(CliContext& cli, const PredictOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) {
    *cli.err << "scalelab: predict: " << status.message() << "\n";
    return 2;
  }
  analysis::ProxyTable table;
  std::vector<std::string> notes;
  std::string source;
  if (!options.points_path.empty()) {
    absl::StatusOr<analysis::ProxyTable> read = analysis::ReadProxyTableCsv(options.points_path);
    if (!read.ok()) {
      *cli.err << "scalelab: predict: " << read.status().message() << "\n";
      return 2;
    }
    table = *std::move(read);
    source = options.points_path;
  } else {
    v1::ListRunsRequest runs_request;
    runs_request.set_sweep_id(options.sweep_id);
    RunListing listing;
    grpc::Status status = FetchRuns(cli, runs_request, /*all_runs=*/true, &listing);
    if (!status.ok()) return Fail(cli, "predict", status);
    // The final point of each run's gen_loss curve (max_points 1 keeps the last).
    v1::GetSweepCurvesResponse curves;
    status = FetchCurves(cli, options.sweep_id, "gen_loss", /*max_points=*/1, &curves);
    if (!status.ok()) return Fail(cli, "predict", status);
    std::map<int64_t, std::vector<v1::MetricPoint>> gen_loss_by_run;
    for (const v1::RunCurve& curve : curves.curves()) {
      gen_loss_by_run[curve.run().id()].assign(curve.points().begin(), curve.points().end());
    }
    v1::GetEvalsRequest evals_request;
    evals_request.set_sweep_id(options.sweep_id);
    evals_request.set_split("test");
    evals_request.set_metric("pass@k");
    evals_request.set_task_set(options.task_set);
    v1::GetEvalsResponse evals;
    grpc::ClientContext context;
    status = cli.results->GetEvals(&context, evals_request, &evals);
    if (!status.ok()) return Fail(cli, "predict", status);
    absl::StatusOr<AssembledPoints> assembled =
        AssembleProxyTable(listing.runs, gen_loss_by_run, evals, options.task_set);
    if (!assembled.ok()) {
      *cli.err << "scalelab: predict: sweep " << options.sweep_id << ": "
               << assembled.status().message() << "\n";
      return 1;
    }
    table = std::move(assembled->table);
    notes = std::move(assembled->notes);
    source = absl::StrCat("sweep ", options.sweep_id, ", task set ", assembled->task_set);
    if (!options.points_out.empty()) {
      std::ofstream file(options.points_out, std::ios::binary | std::ios::trunc);
      WriteProxyTableCsv(file, table);
      file.flush();
      if (!file.good()) {
        *cli.err << "scalelab: predict: --points_out: cannot write " << options.points_out << "\n";
        return 1;
      }
    }
  }

  absl::StatusOr<PredictorReport> report = analysis::RankPredictors(table, options.predictor);
  if (!report.ok()) {
    for (const std::string& note : notes) *cli.err << "scalelab: predict: " << note << "\n";
    *cli.err << "scalelab: predict: " << source << ": " << report.status().message() << "\n";
    return 1;
  }
  report->notes.insert(report->notes.begin(), notes.begin(), notes.end());
  // --output=json without --format: the JSON records.
  const std::string format =
      options.format.empty() && cli.output == OutputFormat::kJson ? "json" : options.format;
  if (format == "csv" || format == "json") {
    const TidyTable tidy = PredictorTable(*report, table.proxy_names);
    format == "csv" ? WriteCsv(*cli.out, tidy) : WriteJson(*cli.out, tidy);
    // stdout stays data; what was left out goes to stderr.
    for (const std::string& note : report->notes) {
      *cli.err << "scalelab: predict: " << note << "\n";
    }
    return 0;
  }
  PrintPredictorReport(*cli.out, *report, source);
  return 0;
}

}  // namespace scalelab::cli
