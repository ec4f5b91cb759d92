// `scalelab predict`: the pairing of SFT runs with their RL children over hand-built Run,
// MetricPoint and EvalResult messages, the SWEEP path against SweepService and ResultsService
// servers on port 0 answering with those messages (real gRPC), and the --points CSV path.
#include "services/cli/predict.h"

#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "services/api/grpc_server.h"

namespace scalelab::cli {
namespace {

// The study of tests/analysis/rl_predictor_test.cc: six SFT runs whose fits are known exactly.
const std::vector<double> kTarget = {0.30, 0.42, 0.38, 0.55, 0.61, 0.52};
const std::vector<double> kSft = {0.20, 0.35, 0.30, 0.40, 0.50, 0.45};
const std::vector<double> kGen = {1.9, 1.6, 1.8, 1.3, 1.2, 1.5};

v1::Run MakeRun(int64_t id, v1::RunKind kind, int64_t parent,
                v1::RunState state = v1::RUN_STATE_SUCCEEDED) {
  v1::Run run;
  run.set_id(id);
  run.set_sweep_id(7);
  run.set_kind(kind);
  run.set_parent_run_id(parent);
  run.set_state(state);
  return run;
}

v1::EvalResult* AddEval(v1::GetEvalsResponse& evals, int64_t run_id, int64_t step, int k,
                        double value, const std::string& task_set = "addition-3d") {
  v1::EvalResult* eval = evals.add_evals();
  eval->set_run_id(run_id);
  eval->set_attempt(1);
  eval->set_step(step);
  eval->set_task_set(task_set);
  eval->set_split("test");
  eval->set_metric("pass@k");
  eval->set_n(8);
  eval->set_k(k);
  eval->set_value(value);
  eval->set_problems(64);
  return eval;
}

v1::MetricPoint GenLoss(int64_t step, double value) {
  v1::MetricPoint point;
  point.set_step(step);
  point.set_name("gen_loss");
  point.set_value(value);
  return point;
}

// Pretrain run 100 -> SFT runs 1..9 -> GRPO children, with the complications the pairing must
// handle: two RL children averaged (SFT 1), an RL child measured by its eval-kind child (SFT 2),
// an earlier evaluation step and other splits and categories to ignore, a larger k on one run
// only (SFT 3), a failed SFT run (7), one without RL child (8), one whose RL child failed (9).
struct Study {
  std::vector<v1::Run> runs;
  std::map<int64_t, std::vector<v1::MetricPoint>> gen_loss;
  v1::GetEvalsResponse evals;

  Study() {
    runs.push_back(MakeRun(100, v1::RUN_KIND_PRETRAIN, 0));
    for (int i = 0; i < 6; ++i) {
      const int64_t sft = i + 1;
      runs.push_back(MakeRun(sft, v1::RUN_KIND_SFT, 100));
      gen_loss[sft] = {GenLoss(20, kGen[i]), GenLoss(10, kGen[i] + 1)};  // final = step 20
      AddEval(evals, sft, 10, 1, 0.01);                                  // an earlier step: ignored
      AddEval(evals, sft, 20, 1, kSft[i]);
      AddEval(evals, sft, 20, 8, kSft[i] + 0.1 * (i % 3));
      v1::EvalResult* other = AddEval(evals, sft, 20, 1, 0.99);
      other->set_category("carry");  // one category of the set: ignored
      other = AddEval(evals, sft, 20, 1, 0.98);
      other->set_split("held_out");  // not the test split: ignored
      if (i != 1) {
        runs.push_back(MakeRun(10 + sft, v1::RUN_KIND_GRPO, sft));
        AddEval(evals, 10 + sft, 50, 1, i == 0 ? 0.28 : kTarget[i]);
      }
    }
    // SFT 1's second RL child: (0.28 + 0.32) / 2 = 0.30.
    runs.push_back(MakeRun(21, v1::RUN_KIND_GRPO, 1));
    AddEval(evals, 21, 50, 1, 0.32);
    // SFT 2's RL child reports 0.99 itself, but its eval-kind child's 0.42 is the measure.
    runs.push_back(MakeRun(12, v1::RUN_KIND_GRPO, 2));
    AddEval(evals, 12, 50, 1, 0.99);
    runs.push_back(MakeRun(32, v1::RUN_KIND_EVAL, 12));
    AddEval(evals, 32, 0, 1, 0.42);
    // SFT 3 alone has pass@16.
    AddEval(evals, 3, 20, 16, 0.7);
    // SFT 7 failed; SFT 8 has no RL child; SFT 9's RL child failed.
    runs.push_back(MakeRun(7, v1::RUN_KIND_SFT, 100, v1::RUN_STATE_FAILED));
    for (int64_t sft : {8, 9}) {
      runs.push_back(MakeRun(sft, v1::RUN_KIND_SFT, 100));
      gen_loss[sft] = {GenLoss(20, 1.0)};
      AddEval(evals, sft, 20, 1, 0.3);
      AddEval(evals, sft, 20, 8, 0.5);
    }
    runs.push_back(MakeRun(19, v1::RUN_KIND_GRPO, 9, v1::RUN_STATE_FAILED));
  }
};

TEST_CASE("predict pairs each SFT run with the mean pass@1 of its RL children",
          "[unit][cli][predict]") {
  Study study;
  auto assembled = AssembleProxyTable(study.runs, study.gen_loss, study.evals, "");
  REQUIRE(assembled.ok());
  CHECK(assembled->task_set == "addition-3d");
  CHECK(assembled->max_k == 8);
  const analysis::ProxyTable& table = assembled->table;
  CHECK(table.target_name == "rl_pass@1");
  CHECK(table.proxy_names == std::vector<std::string>{"sft_pass@1", "gen_loss", "sft_pass@8"});
  REQUIRE(table.points.size() == 6);
  for (int i = 0; i < 6; ++i) {
    INFO("SFT run " << i + 1);
    CHECK(table.points[i].label == std::to_string(i + 1));
    CHECK(table.points[i].target == Approx(kTarget[i]).epsilon(1e-12));
    CHECK(table.points[i].proxies[0] == kSft[i]);
    CHECK(table.points[i].proxies[1] == kGen[i]);
    CHECK(table.points[i].proxies[2] == Approx(kSft[i] + 0.1 * (i % 3)).epsilon(1e-12));
  }
  CHECK(assembled->notes == std::vector<std::string>{
                                "SFT run 7: it is FAILED: left out",
                                "SFT run 8: no GRPO child: left out",
                                "SFT run 9: GRPO run 19 is FAILED: not counted",
                                "SFT run 9: no GRPO child with a test pass@1: left out",
                                "pass@16 is not on every SFT run; the largest k on all is 8",
                            });
}

TEST_CASE("predict asks for a task set when the results span several, and names them",
          "[unit][cli][predict]") {
  Study study;
  AddEval(study.evals, 4, 20, 1, 0.5, "sorting-5");
  auto ambiguous = AssembleProxyTable(study.runs, study.gen_loss, study.evals, "");
  REQUIRE_FALSE(ambiguous.ok());
  CHECK(std::string(ambiguous.status().message()) ==
        "the test pass@k results are of several task sets (addition-3d, sorting-5): choose one "
        "with --task_set");
  auto chosen = AssembleProxyTable(study.runs, study.gen_loss, study.evals, "addition-3d");
  REQUIRE(chosen.ok());
  CHECK(chosen->table.points.size() == 6);
  auto absent = AssembleProxyTable(study.runs, study.gen_loss, study.evals, "word-2");
  REQUIRE_FALSE(absent.ok());
  CHECK_THAT(std::string(absent.status().message()),
             Catch::Contains("no pass@k result on the test split of task set \"word-2\""));

  std::vector<v1::Run> pretrain_only = {MakeRun(100, v1::RUN_KIND_PRETRAIN, 0)};
  auto no_sft = AssembleProxyTable(pretrain_only, {}, study.evals, "");
  REQUIRE_FALSE(no_sft.ok());
  CHECK_THAT(std::string(no_sft.status().message()), Catch::Contains("is an SFT run"));
}

TEST_CASE("predict without pass@k beyond k = 1 fits the other two proxies",
          "[unit][cli][predict]") {
  Study study;
  v1::GetEvalsResponse pass1_only;
  for (const v1::EvalResult& eval : study.evals.evals()) {
    if (eval.k() == 1) *pass1_only.add_evals() = eval;
  }
  auto assembled = AssembleProxyTable(study.runs, study.gen_loss, pass1_only, "");
  REQUIRE(assembled.ok());
  CHECK(assembled->max_k == 1);
  CHECK(assembled->table.proxy_names == std::vector<std::string>{"sft_pass@1", "gen_loss"});
  CHECK(assembled->notes.back() == "the SFT runs were evaluated at k = 1 only: no pass@k proxy");
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("scalelab-predict-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string File(const std::string& name, const std::string& text) const {
    const std::string file = (path_ / name).string();
    std::ofstream(file) << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

struct Output {
  CliContext cli;
  std::ostringstream out, err;
  Output() {
    cli.out = &out;
    cli.err = &err;
  }
};

TEST_CASE("predict --points ranks a CSV's proxies and prints the fitted lines",
          "[unit][cli][predict]") {
  Study study;
  auto assembled = AssembleProxyTable(study.runs, study.gen_loss, study.evals, "");
  REQUIRE(assembled.ok());
  // The assembled points written in the --points format read back as the same table.
  std::ostringstream csv;
  WriteProxyTableCsv(csv, assembled->table);
  CHECK_THAT(csv.str(), Catch::StartsWith("sft_run,target,sft_pass@1,gen_loss,sft_pass@8\n1,0.3"));
  TempDir dir;
  // Only the first two proxies, so that the fits are those of the reference in
  // tests/analysis/rl_predictor_test.cc.
  std::string text = "sft_run,target,sft_pass@1,gen_loss\n";
  for (int i = 0; i < 6; ++i) {
    text += std::to_string(i + 1) + "," + ShortestDouble(kTarget[i]) + "," +
            ShortestDouble(kSft[i]) + "," + ShortestDouble(kGen[i]) + "\n";
  }
  const std::string points = dir.File("points.csv", text);

  PredictOptions options;
  options.points_path = points;
  options.predictor.bootstrap = 200;
  Output table;
  REQUIRE(Predict(table.cli, options) == 0);
  INFO(table.out.str());
  const std::string printed = table.out.str();
  CHECK_THAT(printed, Catch::StartsWith("target of 6 SFT runs (" + points +
                                        ")\nranked by "
                                        "leave-one-out R²"));
  CHECK_THAT(printed, Catch::Contains("95% bootstrap over the SFT runs, 200 resamples"));
  // Rank 1: the pair, LOO R² 0.9707 (python3 reference), fitted 0.68 + 0.463 x - 0.2493 g.
  CHECK_THAT(printed, Catch::Contains("1     sft_pass@1 + gen_loss  0.9707 ["));
  CHECK_THAT(printed, Catch::Contains("0.68 + 0.463 sft_pass@1 - 0.2493 gen_loss"));
  CHECK_THAT(printed, Catch::Contains("2     gen_loss               0.9189 ["));
  CHECK_THAT(printed, Catch::Contains("1.108 - 0.416 gen_loss"));

  options.format = "csv";
  Output as_csv;
  REQUIRE(Predict(as_csv.cli, options) == 0);
  std::istringstream lines(as_csv.out.str());
  std::string header, first;
  std::getline(lines, header);
  std::getline(lines, first);
  CHECK(header ==
        "rank,predictor,proxies,n,loo_r2,loo_r2_low,loo_r2_high,r2,r2_low,r2_high,adj_r2,"
        "adj_r2_low,adj_r2_high,spearman,spearman_low,spearman_high,resamples,intercept,"
        "coef_sft_pass@1,"
        "coef_gen_loss");
  CHECK_THAT(first, Catch::StartsWith("1,sft_pass@1 + gen_loss,2,6,0.970677396762"));

  Output bad;
  options.points_path = dir.File("bad.csv", "sft_run,target,gen_loss\n1,0.5,1.2\n2,0.6,x\n");
  CHECK(Predict(bad.cli, options) == 2);
  CHECK(bad.err.str() == "scalelab: predict: " + options.points_path +
                             ":3: column \"gen_loss\": expected a finite number, got \"x\"\n");

  Output few;
  options.points_path = dir.File("few.csv", "sft_run,target,gen_loss\n1,0.5,1.2\n2,0.6,1.1\n");
  CHECK(Predict(few.cli, options) == 1);
  CHECK_THAT(few.err.str(),
             Catch::Contains("2 points: a predictor from one proxy needs at least 4"));

  Output both;
  options.sweep_id = 7;
  CHECK(Predict(both.cli, options) == 2);
  CHECK_THAT(both.err.str(), Catch::Contains("expected a sweep id or --points FILE.csv"));
}

// The study's messages behind the two services, and the requests they were asked.
class StudySweeps final : public v1::SweepService::Service {
 public:
  explicit StudySweeps(const Study& study) : study_(study) {}
  grpc::Status ListRuns(grpc::ServerContext*, const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override {
    if (request->sweep_id() != 7) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no sweep");
    for (const v1::Run& run : study_.runs) *response->add_runs() = run;
    response->set_total_count(response->runs_size());
    return grpc::Status::OK;
  }

 private:
  const Study& study_;
};

class StudyResults final : public v1::ResultsService::Service {
 public:
  explicit StudyResults(const Study& study) : study_(study) {}
  grpc::Status GetSweepCurves(grpc::ServerContext*, const v1::GetSweepCurvesRequest* request,
                              v1::GetSweepCurvesResponse* response) override {
    std::lock_guard<std::mutex> lock(mu);
    curves_request = *request;
    for (const auto& [run_id, points] : study_.gen_loss) {
      v1::RunCurve* curve = response->add_curves();
      curve->mutable_run()->set_id(run_id);
      // What max_points 1 keeps on the server: the last point.
      const v1::MetricPoint& last = *std::max_element(
          points.begin(), points.end(),
          [](const v1::MetricPoint& a, const v1::MetricPoint& b) { return a.step() < b.step(); });
      *curve->add_points() = last;
    }
    return grpc::Status::OK;
  }
  grpc::Status GetEvals(grpc::ServerContext*, const v1::GetEvalsRequest* request,
                        v1::GetEvalsResponse* response) override {
    std::lock_guard<std::mutex> lock(mu);
    evals_request = *request;
    for (const v1::EvalResult& eval : study_.evals.evals()) {
      if (eval.split() == request->split()) *response->add_evals() = eval;
    }
    return grpc::Status::OK;
  }

  std::mutex mu;
  v1::GetSweepCurvesRequest curves_request;
  v1::GetEvalsRequest evals_request;

 private:
  const Study& study_;
};

TEST_CASE("predict SWEEP fetches runs, final gen_loss and test pass@k, and ranks the proxies",
          "[unit][cli][predict]") {
  Study study;
  StudySweeps sweeps(study);
  StudyResults results(study);
  auto server = services::StartGrpcServer("127.0.0.1:0", {&sweeps, &results});
  REQUIRE(server.ok());
  // Shut down however the test ends: a failed REQUIRE must not leave the server running.
  struct ShutdownAtEnd {
    grpc::Server* server;
    ~ShutdownAtEnd() { server->Shutdown(); }
  } shutdown_at_end{server->server.get()};
  Output output;
  output.cli = Connect("127.0.0.1:" + std::to_string(server->port), OutputFormat::kTable);
  output.cli.out = &output.out;
  output.cli.err = &output.err;
  TempDir dir;
  PredictOptions options;
  options.sweep_id = 7;
  options.predictor.bootstrap = 100;
  options.points_out = dir.File("points.csv", "");
  const int code = Predict(output.cli, options);
  INFO(output.err.str());
  REQUIRE(code == 0);
  CHECK(results.curves_request.metric() == "gen_loss");
  CHECK(results.curves_request.max_points() == 1);
  CHECK(results.evals_request.split() == "test");
  CHECK(results.evals_request.metric() == "pass@k");
  const std::string printed = output.out.str();
  INFO(printed);
  CHECK_THAT(printed, Catch::StartsWith("rl_pass@1 of 6 SFT runs (sweep 7, task set addition-3d)"));
  // Three single proxies and three pairs, each on its own line, then the notes.
  CHECK_THAT(printed, Catch::Contains("sft_pass@1 + gen_loss"));
  CHECK_THAT(printed, Catch::Contains("gen_loss + sft_pass@8"));
  CHECK_THAT(printed, Catch::Contains("notes:\n  SFT run 7: it is FAILED: left out\n"));
  // The points written beside it read back as the table the ranking used.
  auto written = analysis::ReadProxyTableCsv(options.points_out);
  REQUIRE(written.ok());
  CHECK(written->proxy_names == std::vector<std::string>{"sft_pass@1", "gen_loss", "sft_pass@8"});
  REQUIRE(written->points.size() == 6);
  CHECK(written->points[0].label == "1");
  CHECK(written->points[0].target == Approx(0.30).epsilon(1e-12));
  CHECK(written->points[5].proxies[1] == kGen[5]);

  PredictOptions unknown = options;
  unknown.sweep_id = 8;
  unknown.points_out.clear();
  Output missing;
  missing.cli = Connect("127.0.0.1:" + std::to_string(server->port), OutputFormat::kTable);
  missing.cli.err = &missing.err;
  CHECK(Predict(missing.cli, unknown) == 1);
  CHECK(missing.err.str() == "scalelab: predict: no sweep\n");
}

}  // namespace
}  // namespace scalelab::cli
