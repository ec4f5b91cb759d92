// `scalelab fit`, `plot`, `export` and `report` against fake SweepService and ResultsService
// servers on port 0 (real gRPC, canned answers from tests/cli/synthetic_sweep.h).
#include "services/cli/results_commands.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "services/api/grpc_server.h"
#include "services/cli/fit_format.h"
#include "services/cli/format.h"
#include "tests/cli/synthetic_sweep.h"

namespace scalelab::cli {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

class FakeSweeps final : public v1::SweepService::Service {
 public:
  explicit FakeSweeps(const SyntheticSweep& synthetic) : synthetic_(synthetic) {}
  int total_runs = 4;
  v1::Sweep sweep;
  std::atomic<int> list_calls{0};

  grpc::Status GetSweep(grpc::ServerContext*, const v1::GetSweepRequest* request,
                        v1::Sweep* response) override {
    if (request->sweep_id() != sweep.id()) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "sweep 8 does not exist");
    }
    *response = sweep;
    return grpc::Status::OK;
  }

  // 1000 runs a page, like the scheduler.
  grpc::Status ListRuns(grpc::ServerContext*, const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override {
    ++list_calls;
    int start = 0;
    if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &start)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token");
    }
    const int end = std::min(total_runs, start + 1000);
    for (int index = start; index < end; ++index) {
      v1::Run* run = response->add_runs();
      *run = synthetic_.Run(index % synthetic_.n_params.size());
      run->set_id(100 + index);
      run->set_index(index);
    }
    if (end < total_runs) response->set_next_page_token(std::to_string(end));
    response->set_total_count(total_runs);
    return grpc::Status::OK;
  }

 private:
  const SyntheticSweep& synthetic_;
};

class FakeResults final : public v1::ResultsService::Service {
 public:
  explicit FakeResults(const SyntheticSweep& synthetic) : synthetic_(synthetic) {}
  grpc::Status fits_status = grpc::Status::OK;
  v1::GetFitsResponse fits;
  v1::GetFitsRequest last_fits_request;
  std::vector<std::string> curve_metrics;  // one entry per GetSweepCurves call
  int32_t last_max_points = -1;
  grpc::Status reports_status = grpc::Status::OK;

  grpc::Status GetFits(grpc::ServerContext*, const v1::GetFitsRequest* request,
                       v1::GetFitsResponse* response) override {
    last_fits_request = *request;
    if (!fits_status.ok()) return fits_status;
    *response = fits;
    return grpc::Status::OK;
  }

  grpc::Status GetSweepCurves(grpc::ServerContext*, const v1::GetSweepCurvesRequest* request,
                              v1::GetSweepCurvesResponse* response) override {
    curve_metrics.push_back(request->metric());
    last_max_points = request->max_points();
    *response = synthetic_.Curves(request->metric());
    return grpc::Status::OK;
  }

  grpc::Status GetCarbonReport(grpc::ServerContext*, const v1::GetCarbonReportRequest* request,
                               v1::CarbonReport* report) override {
    if (!reports_status.ok()) return reports_status;
    report->set_sweep_id(request->sweep_id());
    v1::RunCarbon* run = report->add_runs();
    run->set_run_id(100);
    (*run->mutable_overrides())["model.d_model"] = "64";
    run->set_energy_j(7200);
    run->set_source("rapl");
    run->set_operational_g(0.96);
    run->set_embodied_g(0.04);
    run->set_total_g(1.0);
    run->set_final_loss(3.5);
    run->set_loss_improvement(2.0);
    run->set_g_per_loss_unit(0.5);
    report->set_energy_j(7200);
    report->set_operational_g(0.96);
    report->set_embodied_g(0.04);
    report->set_total_g(1.0);
    report->set_pue(request->pue() > 0 ? request->pue() : 1.2);
    report->set_grid_g_per_kwh(400);
    report->set_assumptions("CPU package power from RAPL; embodied 1200 kgCO2e over 4 years");
    return grpc::Status::OK;
  }

  grpc::Status GetReliabilityReport(grpc::ServerContext*,
                                    const v1::GetReliabilityReportRequest* request,
                                    v1::ReliabilityReport* report) override {
    if (!reports_status.ok()) return reports_status;
    last_reliability_sweep = request->sweep_id();
    v1::FailureCount* lost = report->add_failures();
    lost->set_failure_class(v1::FAILURE_CLASS_NODE_LOST);
    lost->set_count(2);
    v1::FailureCount* oom = report->add_failures();
    oom->set_failure_class(v1::FAILURE_CLASS_OUT_OF_MEMORY);
    oom->set_count(1);
    v1::MttfBySize* size = report->add_mttf();
    size->set_devices(1);
    size->set_failures(3);
    size->set_device_hours(6);
    size->set_mttf_hours(2);
    v1::MttfBySize* big = report->add_mttf();
    big->set_devices(8);
    big->set_device_hours(1);
    big->set_mttf_hours(std::nan(""));
    v1::RunReliability* run = report->add_runs();
    run->set_run_id(100);
    run->set_attempts(2);
    run->set_wall_s(600);
    run->set_productive_s(540);
    run->set_ettr(0.9);
    run->set_expected_ettr(0.92);
    report->set_failures_per_node_hour(0.5);
    report->set_restart_overhead_s(12);
    report->set_checkpoint_write_s(3);
    report->set_young_daly_interval_s(420);
    report->set_assumptions("w assumed 3 s: no checkpoint timings yet");
    return grpc::Status::OK;
  }
  std::atomic<int64_t> last_reliability_sweep{-1};

 private:
  const SyntheticSweep& synthetic_;
};

class Fixture {
 public:
  Fixture() : sweeps(synthetic), results(synthetic) {
    sweeps.sweep = synthetic.sweep;
    results.fits = synthetic.Fits();
    auto server = services::StartGrpcServer("127.0.0.1:0", {&sweeps, &results});
    REQUIRE(server.ok());
    server_ = std::move(server->server);
    cli = Connect("127.0.0.1:" + std::to_string(server->port), OutputFormat::kTable);
    cli.out = &out;
    cli.err = &err;
  }
  ~Fixture() { server_->Shutdown(); }

  SyntheticSweep synthetic;
  FakeSweeps sweeps;
  FakeResults results;
  CliContext cli;
  std::ostringstream out;
  std::ostringstream err;

 private:
  std::unique_ptr<grpc::Server> server_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

FitOptions FitOf(int64_t sweep_id) {
  FitOptions options;
  options.sweep_id = sweep_id;
  return options;
}

TEST_CASE("numbers print to the digits asked for, intervals to the digits that tell lo from hi",
          "[unit][cli][fit]") {
  CHECK(Significant(0.34731, 4) == "0.3473");
  CHECK(Significant(406.42, 4) == "406.4");
  CHECK(Significant(29638.2, 3) == "29638");
  CHECK(Significant(444809, 3) == "4.45e5");
  CHECK(Significant(1e19, 3) == "1e19");
  CHECK(Significant(-3.2e-5, 2) == "-3.2e-5");
  CHECK(Significant(0.09999999, 4) == "0.1000");
  CHECK(Significant(std::nan(""), 4) == "-");
  v1::Estimate alpha;
  alpha.set_value(0.3473);
  alpha.set_lo(0.31);
  alpha.set_hi(0.39);
  CHECK(EstimateText(alpha, 4) == "0.3473 [0.310, 0.390]");
  v1::Estimate loss;
  loss.set_value(2.3081);
  loss.set_lo(2.3001);
  loss.set_hi(2.3152);
  CHECK(EstimateText(loss, 4) == "2.308 [2.300, 2.315]");
  loss.set_lo(std::nan(""));
  CHECK(EstimateText(loss, 4) == "2.308");
}

TEST_CASE("fit prints each parameter with its interval, the held-out error and allocations",
          "[unit][cli][fit]") {
  Fixture f;
  FitOptions options = FitOf(7);
  options.budgets_flops = {1e19, 1e20};
  options.compare_n_params = 1e8;
  REQUIRE(Fit(f.cli, options) == 0);
  CHECK(f.results.last_fits_request.budgets_flops_size() == 2);
  CHECK(f.results.last_fits_request.compare_n_params() == 1e8);
  const std::string text = f.out.str();
  CHECK_THAT(text, StartsWith("sweep 7: 1 fit\n\nfit 3: chinchilla L(N,D) = E + A/N^alpha + "
                              "B/D^beta; group all runs\n"));
  CHECK_THAT(text, Contains("  4 points from 4 runs, objective 0.001230 (sum of Huber terms), "
                            "intervals from 1000 bootstrap refits\n"));
  CHECK_THAT(text, Contains("  E      1.690 [1.52, 1.86]     (95%)\n"
                            "  A      406.4 [366, 447]       (95%)\n"
                            "  alpha  0.3400 [0.306, 0.374]  (95%)\n"));
  CHECK_THAT(text, Contains("held-out extrapolation error: 1.83% (refit without the largest N"));
  CHECK_THAT(text, Contains("BUDGET_FLOPS  N_OPT (params)"));
  CHECK_THAT(text, Contains("    1e13 "));
  INFO(text);
  CHECK(f.err.str().empty());
}

TEST_CASE("fit prints data-efficiency comparisons between groups", "[unit][cli][fit]") {
  Fixture f;
  v1::Fit books = f.results.fits.fits(0);
  (*f.results.fits.mutable_fits(0)->mutable_group())["data.mix"] = "web";
  (*books.mutable_group())["data.mix"] = "books";
  *f.results.fits.add_fits() = books;
  v1::EfficiencyComparison* comparison = f.results.fits.add_comparisons();
  (*comparison->mutable_faster())["data.mix"] = "web";
  (*comparison->mutable_slower())["data.mix"] = "books";
  comparison->set_n_params(1e8);
  comparison->set_target_loss(3.1);
  comparison->mutable_multiplier()->set_value(1.8);
  comparison->mutable_multiplier()->set_lo(1.52);
  comparison->mutable_multiplier()->set_hi(2.13);
  REQUIRE(Fit(f.cli, FitOf(7)) == 0);
  const std::string text = f.out.str();
  CHECK_THAT(text, StartsWith("sweep 7: 2 fits\n"));
  CHECK_THAT(text, Contains("; group data.mix=web\n") && Contains("; group data.mix=books\n"));
  CHECK_THAT(text, Contains("  FASTER        SLOWER          N_PARAMS  TARGET_LOSS  MULTIPLIER "
                            "(95%)\n  data.mix=web  data.mix=books  1e8       3.100        1.80 "
                            "[1.52, 2.13]x\n"));
}

TEST_CASE("fit says why there is no fit yet", "[unit][cli][fit]") {
  Fixture f;
  f.results.fits.Clear();
  SECTION("the sweep is still running") {
    f.sweeps.sweep.set_state(v1::SWEEP_STATE_RUNNING);
    (*f.sweeps.sweep.mutable_runs_by_state())["SUCCEEDED"] = 1;
    (*f.sweeps.sweep.mutable_runs_by_state())["RUNNING"] = 3;
    REQUIRE(Fit(f.cli, FitOf(7)) == 0);
    CHECK(f.out.str() ==
          "sweep 7 has no fits yet: it is still running (1 of 4 runs finished); fits are "
          "computed when the sweep or a fit group completes\n");
  }
  SECTION("the manifest asks for none") {
    f.sweeps.sweep.mutable_spec()->mutable_fit()->set_law("none");
    REQUIRE(Fit(f.cli, FitOf(7)) == 0);
    CHECK(f.out.str() == "sweep 7 has no fits: its manifest asks for none (fit.law: none)\n");
  }
  SECTION("a group's fit carries only its message") {
    v1::Fit* fit = f.results.fits.add_fits();
    fit->set_law("chinchilla");
    (*fit->mutable_group())["data.mix"] = "web";
    fit->set_message("too few points: 3 runs, at least 5 needed");
    REQUIRE(Fit(f.cli, FitOf(7)) == 0);
    CHECK_THAT(f.out.str(), Contains("group data.mix=web\n  no fit: too few points: 3 runs, at "
                                     "least 5 needed\n"));
  }
  SECTION("as JSON, stdout stays JSON and the reason goes to stderr") {
    f.cli.output = OutputFormat::kJson;
    REQUIRE(Fit(f.cli, FitOf(7)) == 0);
    CHECK(f.out.str() == "{}\n");
    CHECK_THAT(f.err.str(), StartsWith("scalelab: fit: sweep 7 has no fits:"));
  }
}

TEST_CASE("fit against a scheduler without fits says so and how to fit locally",
          "[unit][cli][fit]") {
  Fixture f;
  f.results.fits_status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  CHECK(Fit(f.cli, FitOf(7)) == 1);
  CHECK_THAT(f.err.str(), StartsWith("scalelab: fit: the scheduler at 127.0.0.1:"));
  CHECK_THAT(f.err.str(),
             Contains("does not serve fits (GetFits) yet (UNIMPLEMENTED); fit the runs here "
                      "instead: scalelab export 7 --out runs.csv && scalelab fit --csv runs.csv "
                      "--law chinchilla\n"));
}

TEST_CASE("fit, plot, export and report name the bad argument", "[unit][cli]") {
  Fixture f;
  CHECK(ParseBudgets("1e19, 1e20").value() == std::vector<double>{1e19, 1e20});
  CHECK(ParseBudgets("").value().empty());
  CHECK(ParseBudgets("1e19,lots").status().message() ==
        "--budgets: expected comma-separated positive FLOP counts such as 1e19,1e20, got "
        "\"lots\"");
  CHECK(ParseBudgets("-5").status().message() ==
        "--budgets: expected comma-separated positive FLOP counts such as 1e19,1e20, got "
        "\"-5\"");

  FitOptions fit = FitOf(7);
  fit.compare_target_loss = -1;
  CHECK(Fit(f.cli, fit) == 2);
  PlotOptions plot;
  plot.sweep_id = 7;
  CHECK(Plot(f.cli, plot) == 2);
  plot.out = "curves.pdf";
  CHECK(Plot(f.cli, plot) == 2);
  plot.out = "curves.svg";
  plot.x = "time";
  CHECK(Plot(f.cli, plot) == 2);
  ExportOptions export_options;
  export_options.sweep_id = 7;
  export_options.rows = "steps";
  CHECK(Export(f.cli, export_options) == 2);
  export_options.rows = "runs";
  export_options.format = "xlsx";
  CHECK(Export(f.cli, export_options) == 2);
  CarbonOptions carbon;
  carbon.sweep_id = 7;
  carbon.pue = 0.5;
  CHECK(CarbonReport(f.cli, carbon) == 2);
  CHECK(f.err.str() ==
        "scalelab: fit: --compare_loss: expected a positive loss (or 0 for the default), got -1\n"
        "scalelab: plot: --out: expected FILE.svg or FILE.png\n"
        "scalelab: plot: --out: expected a file name ending in .svg or .png, got "
        "\"curves.pdf\"\n"
        "scalelab: plot: --x: expected compute or tokens, got \"time\"\n"
        "scalelab: export: --rows: expected runs or points, got \"steps\"\n"
        "scalelab: export: --format: expected csv or json, got \"xlsx\"\n"
        "scalelab: report carbon: --pue: expected a power usage effectiveness of at least 1 (or "
        "0 for the default), got 0.5\n");
  CHECK(f.results.curve_metrics.empty());  // nothing was asked of the server
}

TEST_CASE("plot draws a sweep's curves, fit and frontier from the server's answers",
          "[unit][cli][plot][gnuplot]") {
  Fixture f;
  char pattern[] = "/tmp/scalelab_plot_cmd_XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  const std::string dir = pattern;
  PlotOptions options;
  options.sweep_id = 7;
  options.out = dir + "/sweep7.svg";
  REQUIRE(Plot(f.cli, options) == 0);
  CHECK(f.results.curve_metrics == std::vector<std::string>{"val_loss"});
  CHECK(f.results.last_max_points == 200);
  // Budgets at the decades the curves span, up to ten times the largest C (1.15e17).
  CHECK(std::vector<double>(f.results.last_fits_request.budgets_flops().begin(),
                            f.results.last_fits_request.budgets_flops().end()) ==
        std::vector<double>{1e13, 1e14, 1e15, 1e16, 1e17, 1e18});
  CHECK(f.out.str() == "wrote " + options.out + ": 4 runs, 1 fit, 12 isoFLOP minima\n");
  CHECK(f.err.str().empty());
  CHECK_THAT(ReadFile(options.out), Contains("<svg"));

  SECTION("without fits from the server, the curves are still drawn") {
    f.results.fits_status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
    std::ostringstream out;
    f.cli.out = &out;
    REQUIRE(Plot(f.cli, options) == 0);
    CHECK(f.err.str() ==
          "scalelab: plot: fits not drawn: the scheduler does not serve fits yet (GetFits is "
          "UNIMPLEMENTED)\n");
    CHECK(out.str() == "wrote " + options.out + ": 4 runs, 0 fits, 12 isoFLOP minima\n");
  }
  SECTION("a missing gnuplot is named") {
    options.gnuplot = "scalelab-no-such-gnuplot";
    CHECK(Plot(f.cli, options) == 1);
    CHECK_THAT(f.err.str(), StartsWith("scalelab: plot: gnuplot is not installed"));
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("export pages through every run and asks for curves once per metric",
          "[unit][cli][export]") {
  Fixture f;
  f.sweeps.total_runs = 2500;
  ExportOptions options;
  options.sweep_id = 7;
  REQUIRE(Export(f.cli, options) == 0);
  CHECK(f.sweeps.list_calls == 3);
  const std::string csv = f.out.str();
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 2500);
  CHECK_THAT(csv, StartsWith("run_id,index,state,data.mix,model.d_model,n_params,"));

  std::ostringstream points;
  f.cli.out = &points;
  options.rows = "points";
  options.format = "json";
  REQUIRE(Export(f.cli, options) == 0);
  CHECK(f.results.curve_metrics == std::vector<std::string>{"val_loss", "train_loss"});
  CHECK(f.results.last_max_points == 0);
  CHECK_THAT(points.str(), StartsWith("[\n{\"run_id\": 100, \"attempt\": 1, \"step\": 0,"));

  SECTION("to a file, replacing it whole") {
    const std::string path = "/tmp/scalelab_export_test_" + std::to_string(::getpid()) + ".csv";
    std::ofstream(path) << "old contents\n";
    std::ostringstream out;
    f.cli.out = &out;
    options.out = path;
    options.format = "csv";
    REQUIRE(Export(f.cli, options) == 0);
    CHECK(out.str() == "wrote 56 points rows, 9 columns to " + path + "\n");
    CHECK_THAT(ReadFile(path), StartsWith("run_id,attempt,step,tokens,name,value,wall_time_s,"));
    std::remove(path.c_str());
  }
  SECTION("of a sweep that does not exist, an error") {
    options.sweep_id = 8;
    CHECK(Export(f.cli, options) == 1);
    CHECK(f.err.str() == "scalelab: export: sweep 8 does not exist\n");
  }
}

TEST_CASE("report carbon prints runs, totals, PUE and grid, and the assumptions",
          "[unit][cli][report]") {
  Fixture f;
  CarbonOptions options;
  options.sweep_id = 7;
  options.pue = 1.5;
  REQUIRE(CarbonReport(f.cli, options) == 0);
  CHECK(f.out.str() ==
        "sweep 7: carbon footprint (grams CO2e)\n"
        "RUN    ENERGY_WH  SOURCE  OPERATIONAL_G  EMBODIED_G  TOTAL_G  FINAL_LOSS  "
        "LOSS_IMPROVEMENT  G_PER_LOSS_UNIT  OVERRIDES\n"
        "100    2.000      rapl    0.9600         0.04000     1.000    3.500       2.000        "
        "     0.5000           model.d_model=64\n"
        "TOTAL  2.000              0.9600         0.04000     1.000\n"
        "PUE 1.50, grid 400.0 gCO2e/kWh\n"
        "assumptions: CPU package power from RAPL; embodied 1200 kgCO2e over 4 years\n");

  SECTION("as JSON") {
    std::ostringstream json;
    f.cli.out = &json;
    f.cli.output = OutputFormat::kJson;
    REQUIRE(CarbonReport(f.cli, options) == 0);
    CHECK_THAT(json.str(), Contains("\"total_g\": 1"));
  }
  SECTION("from a scheduler that does not serve it") {
    f.results.reports_status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet");
    CHECK(CarbonReport(f.cli, options) == 1);
    CHECK_THAT(f.err.str(), Contains("does not serve carbon reports (GetCarbonReport) yet "
                                     "(UNIMPLEMENTED: not yet)"));
  }
}

TEST_CASE("report reliability prints failures, MTTF by size, ETTR and the checkpoint interval",
          "[unit][cli][report]") {
  Fixture f;
  REQUIRE(ReliabilityReport(f.cli, 0) == 0);
  CHECK(f.results.last_reliability_sweep == 0);
  const std::string text = f.out.str();
  CHECK_THAT(text, StartsWith("cluster: reliability\n"));
  CHECK_THAT(text, Contains("  CLASS          FAILURES\n  NODE_LOST      2\n"
                            "  OUT_OF_MEMORY  1\n  TOTAL          3\n"));
  CHECK_THAT(text, Contains("  8        0         1.000         - (no failures)\n"));
  CHECK_THAT(text, Contains("  100    2         10.0 min  9.00 min    0.900  0.920\n"
                            "  TOTAL            10.0 min  9.00 min    0.900\n"));
  CHECK_THAT(text, Contains("failures per node-hour r = 0.500, restart overhead u0 = 12.0 s, "
                            "checkpoint write w = 3.00 s, Young/Daly checkpoint interval = "
                            "7.00 min\n"));
  CHECK_THAT(text, Contains("assumptions: w assumed 3 s"));
  INFO(text);
}

}  // namespace
}  // namespace scalelab::cli
