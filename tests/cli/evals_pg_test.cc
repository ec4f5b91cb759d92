// Evaluation results along their whole path: a trainer (a shell script standing in for
// scalelab-train) prints eval lines, the real worker agent forwards them with ReportEvals over
// gRPC to the real scheduler in-process (port 0, a fresh PostgreSQL database), and
// `scalelab evals` prints them. Also what the API answers to a bad or stale report.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "scalelab/v1/sweep.grpc.pb.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "services/api/grpc_server.h"
#include "services/cli/commands.h"
#include "services/cli/evals.h"
#include "tests/support/pg_harness.h"
#include "worker/agent.h"

namespace scalelab::scheduler {
namespace {

namespace fs = std::filesystem;

constexpr char kManifest[] = R"(name: evals
project: tests
kind: pretrain
base:
  model: {family: transformer, n_layers: 1, n_heads: 4, seq_len: 32}
  data: {sources: {corpus: data/corpus}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}
sweep:
  grid: {model.d_model: [32]}
)";

// What the stand-in trainer prints: a metric, three results (one per category and the whole
// set, one with an interval), a line breaking the rules (k > n, skipped by the worker), and a
// re-sent line with a new value that replaces the first.
constexpr char kTrainer[] =
    R"(echo '{"step":10,"tokens":1000,"name":"train_loss","value":2.5,"wall_time_s":0.1}'
echo '{"eval":"pass@k","step":10,"task_set":"addition-3d","split":"test","category":"","n":8,"k":1,"value":0.25,"problems":40}'
echo '{"eval":"pass@k","step":10,"task_set":"addition-3d","split":"test","category":"","n":8,"k":4,"value":0.5,"low":0.375,"high":0.625,"problems":40}'
echo '{"eval":"accuracy","step":10,"task_set":"addition-3d","split":"heldout","category":"carry","n":1,"k":1,"value":0.75,"problems":20}'
echo '{"eval":"pass@k","step":10,"task_set":"addition-3d","split":"test","category":"","n":8,"k":9,"value":0.5,"problems":40}'
echo '{"eval":"pass@k","step":10,"task_set":"addition-3d","split":"test","category":"","n":8,"k":1,"value":0.3125,"problems":40}'
exit 0
)";

bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return done();
}

class Stack {
 public:
  Stack() {
    char pattern[] = "/tmp/scalelab_evals_test_XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    fs::create_directories(dir_ + "/data/corpus");

    SchedulerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_address = "";
    options.database_url = scalelab::testing::FreshDatabaseUrl();
    options.run_fitter = false;
    auto started = Scheduler::Start(options);
    INFO(started.status().ToString());
    REQUIRE(started.ok());
    scheduler_ = *std::move(started);
    address_ = "127.0.0.1:" + std::to_string(scheduler_->grpc_port());
    sweeps_ = v1::SweepService::NewStub(services::MakeChannel(address_));
    workers_ = v1::WorkerService::NewStub(services::MakeChannel(address_));
  }
  ~Stack() {
    if (agent_thread_.joinable()) {
      agent_->Stop();
      agent_thread_.join();
    }
    scheduler_->Shutdown();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  int64_t Submit() {
    v1::SubmitSweepRequest request;
    request.set_manifest_yaml(kManifest);
    request.set_manifest_name("evals.yaml");
    v1::SubmitSweepResponse response;
    grpc::ClientContext context;
    grpc::Status status = sweeps_->SubmitSweep(&context, request, &response);
    INFO(status.error_message());
    REQUIRE(status.ok());
    return response.sweep().id();
  }

  // Starts the real worker agent with `trainer_body` as its trainer (run by /bin/sh).
  void StartWorker(const std::string& trainer_body) {
    const std::string trainer = dir_ + "/fake-train.sh";
    std::ofstream(trainer) << "#!/bin/sh\n" << trainer_body;
    REQUIRE(::chmod(trainer.c_str(), 0755) == 0);
    worker::AgentOptions options;
    options.scheduler_address = address_;
    options.name = "evals-test";
    options.trainer_path = trainer;
    options.data_root = dir_;
    options.work_dir = dir_ + "/work";
    options.metrics_address = "";
    options.report_interval = absl::Milliseconds(50);
    options.lease_poll_interval = absl::Milliseconds(50);
    options.energy.powercap_root = dir_ + "/powercap";
    options.energy.use_nvml = false;
    auto agent = worker::Agent::Create(options);
    REQUIRE(agent.ok());
    agent_ = *std::move(agent);
    agent_thread_ = std::thread([this] { CHECK(agent_->Run().ok()); });
  }

  v1::Run OnlyRun(int64_t sweep_id) {
    v1::ListRunsRequest request;
    request.set_sweep_id(sweep_id);
    v1::ListRunsResponse response;
    grpc::ClientContext context;
    REQUIRE(sweeps_->ListRuns(&context, request, &response).ok());
    REQUIRE(response.runs_size() == 1);
    return response.runs(0);
  }

  // `scalelab evals` with `options`, its exit code and what it printed.
  int Evals(const cli::EvalsOptions& options, std::string* out, std::string* err) {
    cli::CliContext context = cli::Connect(address_, cli::OutputFormat::kTable);
    std::ostringstream out_stream, err_stream;
    context.out = &out_stream;
    context.err = &err_stream;
    const int code = cli::Evals(context, options);
    *out = out_stream.str();
    *err = err_stream.str();
    return code;
  }

  v1::WorkerService::Stub& workers() { return *workers_; }

 private:
  std::string dir_;
  std::unique_ptr<Scheduler> scheduler_;
  std::string address_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<worker::Agent> agent_;
  std::thread agent_thread_;
};

TEST_CASE("Eval lines a trainer prints reach GetEvals and scalelab evals through the worker",
          "[pg][cli]") {
  Stack stack;
  const int64_t sweep_id = stack.Submit();
  stack.StartWorker(kTrainer);
  REQUIRE(WaitFor([&] { return stack.OnlyRun(sweep_id).state() == v1::RUN_STATE_SUCCEEDED; }));
  const int64_t run_id = stack.OnlyRun(sweep_id).id();

  cli::EvalsOptions options;
  options.run_id = run_id;
  options.format = "csv";
  std::string out, err;
  REQUIRE(stack.Evals(options, &out, &err) == 0);
  const std::string run = std::to_string(run_id);
  // The k > n line was skipped; the re-sent k = 1 line replaced the first (0.3125, not 0.25).
  CHECK(out == "run_id,attempt,step,task_set,split,category,metric,n,k,value,low,high,problems\n" +
                   run + ",1,10,addition-3d,heldout,carry,accuracy,1,1,0.75,,,20\n" + run +
                   ",1,10,addition-3d,test,,pass@k,8,1,0.3125,,,40\n" + run +
                   ",1,10,addition-3d,test,,pass@k,8,4,0.5,0.375,0.625,40\n");

  options.run_id = 0;
  options.sweep_id = sweep_id;
  options.format = "table";
  options.split = "test";
  REQUIRE(stack.Evals(options, &out, &err) == 0);
  REQUIRE(run == "1");  // a fresh database: the column widths below are for a 1-digit id
  // A sweep's results name each run's pipeline stage.
  CHECK(out ==
        "RUN  STAGE  STEP  TASK_SET     SPLIT  CATEGORY  METRIC  K  VALUE [LOW, HIGH]   N  "
        "PROBLEMS\n"
        "1    main   10    addition-3d  test   (all)     pass@k  1  0.3125              8  40\n"
        "1    main   10    addition-3d  test   (all)     pass@k  4  0.5 [0.375, 0.625]  8  40\n");

  options.metric = "accuracy";
  REQUIRE(stack.Evals(options, &out, &err) == 0);
  CHECK(out ==
        "sweep " + std::to_string(sweep_id) + " has no evaluation results matching the filters\n");

  options = cli::EvalsOptions();
  options.run_id = run_id + 1000;
  CHECK(stack.Evals(options, &out, &err) == 1);
  CHECK(err.find("does not exist") != std::string::npos);
}

TEST_CASE("ReportEvals over gRPC refuses a bad result naming it and a stale attempt",
          "[pg][scheduler]") {
  Stack stack;
  const int64_t sweep_id = stack.Submit();
  v1::RegisterRequest register_request;
  register_request.set_name("manual");
  register_request.set_hostname("test");
  register_request.set_cpu_slots(1);
  v1::RegisterResponse registered;
  {
    grpc::ClientContext context;
    REQUIRE(stack.workers().Register(&context, register_request, &registered).ok());
  }
  v1::LeaseRunsRequest lease_request;
  lease_request.set_worker_id(registered.worker_id());
  lease_request.set_free_slots(1);
  v1::LeaseRunsResponse leased;
  {
    grpc::ClientContext context;
    REQUIRE(stack.workers().LeaseRuns(&context, lease_request, &leased).ok());
  }
  REQUIRE(leased.leases_size() == 1);
  const v1::RunSpec& spec = leased.leases(0).spec();

  v1::ReportEvalsRequest report;
  report.set_worker_id(registered.worker_id());
  report.set_run_id(spec.run_id());
  report.set_attempt(spec.attempt());
  v1::EvalResult* eval = report.add_evals();
  eval->set_step(5);
  eval->set_task_set("sorting");
  eval->set_split("test");
  eval->set_metric("pass@k");
  eval->set_n(4);
  eval->set_k(2);
  eval->set_value(0.5);
  *report.add_evals() = *eval;
  report.mutable_evals(1)->set_step(6);
  report.mutable_evals(1)->set_value(std::nan(""));
  v1::ReportEvalsResponse response;
  {
    grpc::ClientContext context;
    grpc::Status status = stack.workers().ReportEvals(&context, report, &response);
    CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK(status.error_message() == "evals[1].value: expected a finite number, got nan");
  }
  report.mutable_evals()->RemoveLast();
  {
    grpc::ClientContext context;
    REQUIRE(stack.workers().ReportEvals(&context, report, &response).ok());
    CHECK(response.stored() == 1);
  }
  report.set_attempt(spec.attempt() + 1);
  {
    grpc::ClientContext context;
    grpc::Status status = stack.workers().ReportEvals(&context, report, &response);
    CHECK(status.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  }
  cli::EvalsOptions options;
  options.sweep_id = sweep_id;
  options.format = "json";
  std::string out, err;
  REQUIRE(stack.Evals(options, &out, &err) == 0);
  CHECK(out == "[\n{\"run_id\": " + std::to_string(spec.run_id()) +
                   ", \"stage\": \"main\", \"attempt\": 1, \"step\": 5, \"task_set\": \"sorting\", "
                   "\"split\": "
                   "\"test\", \"category\": \"\", \"metric\": \"pass@k\", \"n\": 4, \"k\": 2, "
                   "\"value\": 0.5, \"low\": null, \"high\": null, \"problems\": 0}\n]\n");
}

}  // namespace
}  // namespace scalelab::scheduler
