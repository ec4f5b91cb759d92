// The worker loop against a fake WorkerService (a real gRPC server on port 0 with canned
// answers), a FakeClock, and a shell script standing in for scalelab-train. Each test is one
// promise of the agent: the spec it writes, the batches it reports, the artifacts it
// describes, the exit it classifies, the child it stops.
#include "worker/agent.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "runspec/spec_file.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "services/api/grpc_server.h"
#include "services/common/clock.h"

namespace scalelab::worker {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kRunId = 7;

// Leases each queued lease once; records every report. Thread-safe (gRPC's threads call it).
class FakeWorkerService final : public v1::WorkerService::Service {
 public:
  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override {
    absl::MutexLock lock(&mu_);
    registrations_.push_back(*request);
    response->set_worker_id(1);
    response->set_heartbeat_interval_s(1);
    response->set_lease_ttl_s(60);
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    absl::MutexLock lock(&mu_);
    heartbeats_.push_back(*request);
    for (const v1::RunAttempt& stop : stop_) *response->add_stop() = stop;
    return grpc::Status::OK;
  }
  grpc::Status LeaseRuns(grpc::ServerContext*, const v1::LeaseRunsRequest*,
                         v1::LeaseRunsResponse* response) override {
    absl::MutexLock lock(&mu_);
    while (!to_lease_.empty()) {
      *response->add_leases() = to_lease_.front();
      to_lease_.pop_front();
    }
    return grpc::Status::OK;
  }
  grpc::Status ReportMetrics(grpc::ServerContext*, const v1::ReportMetricsRequest* request,
                             v1::ReportMetricsResponse* response) override {
    absl::MutexLock lock(&mu_);
    metric_reports_.push_back(*request);
    events_.push_back("ReportMetrics");
    response->set_stored(request->points_size());
    return grpc::Status::OK;
  }
  grpc::Status ReportArtifacts(grpc::ServerContext*, const v1::ReportArtifactsRequest* request,
                               v1::ReportArtifactsResponse* response) override {
    absl::MutexLock lock(&mu_);
    artifact_reports_.push_back(*request);
    events_.push_back("ReportArtifacts");
    return grpc::Status::OK;
  }
  grpc::Status ReportEvals(grpc::ServerContext*, const v1::ReportEvalsRequest* request,
                           v1::ReportEvalsResponse* response) override {
    absl::MutexLock lock(&mu_);
    eval_reports_.push_back(*request);
    events_.push_back("ReportEvals");
    response->set_stored(request->evals_size());
    return evals_answer_;
  }
  grpc::Status CompleteRun(grpc::ServerContext*, const v1::CompleteRunRequest* request,
                           v1::CompleteRunResponse* response) override {
    absl::MutexLock lock(&mu_);
    completions_.push_back(*request);
    events_.push_back("CompleteRun");
    response->set_state(request->succeeded() ? v1::RUN_STATE_SUCCEEDED : v1::RUN_STATE_FAILED);
    return grpc::Status::OK;
  }

  void Offer(const v1::Lease& lease) {
    absl::MutexLock lock(&mu_);
    to_lease_.push_back(lease);
  }
  void StopOnHeartbeat(int64_t run_id, int attempt) {
    absl::MutexLock lock(&mu_);
    v1::RunAttempt stop;
    stop.set_run_id(run_id);
    stop.set_attempt(attempt);
    stop_.push_back(stop);
  }
  std::vector<v1::RegisterRequest> registrations() {
    absl::MutexLock lock(&mu_);
    return registrations_;
  }
  std::vector<v1::HeartbeatRequest> heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  std::vector<v1::ReportMetricsRequest> metric_reports() {
    absl::MutexLock lock(&mu_);
    return metric_reports_;
  }
  std::vector<v1::ReportArtifactsRequest> artifact_reports() {
    absl::MutexLock lock(&mu_);
    return artifact_reports_;
  }
  std::vector<v1::CompleteRunRequest> completions() {
    absl::MutexLock lock(&mu_);
    return completions_;
  }
  std::vector<v1::ReportEvalsRequest> eval_reports() {
    absl::MutexLock lock(&mu_);
    return eval_reports_;
  }
  // What ReportEvals answers from now on (OK by default).
  void AnswerEvals(grpc::Status status) {
    absl::MutexLock lock(&mu_);
    evals_answer_ = std::move(status);
  }
  // The reporting calls in the order they arrived.
  std::vector<std::string> events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }

 private:
  absl::Mutex mu_;
  std::deque<v1::Lease> to_lease_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::RunAttempt> stop_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::RegisterRequest> registrations_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::HeartbeatRequest> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReportMetricsRequest> metric_reports_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReportArtifactsRequest> artifact_reports_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::CompleteRunRequest> completions_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReportEvalsRequest> eval_reports_ ABSL_GUARDED_BY(mu_);
  grpc::Status evals_answer_ ABSL_GUARDED_BY(mu_) = grpc::Status::OK;
  std::vector<std::string> events_ ABSL_GUARDED_BY(mu_);
};

v1::Lease LeaseOfRun(int64_t run_id) {
  v1::Lease lease;
  lease.set_lease_ttl_s(60);
  v1::RunSpec& spec = *lease.mutable_spec();
  spec.set_run_id(run_id);
  spec.set_sweep_id(3);
  spec.set_attempt(1);
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  v1::RunConfig& config = *spec.mutable_config();
  config.mutable_model()->set_d_model(64);
  config.mutable_model()->set_n_layers(2);
  config.mutable_model()->set_n_heads(4);
  config.mutable_model()->set_seq_len(64);
  config.mutable_train()->set_tokens(5e5);
  config.mutable_train()->set_batch_tokens(4096);
  config.mutable_train()->set_lr(3e-3);
  (*config.mutable_data()->mutable_sources())["web"] = "data/web";
  return lease;
}

// Polls `done` every 10 ms of real time (the agent's loop runs on real time between ticks).
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(15)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return done();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A fake scheduler, a folder, a trainer script, and an agent running on a FakeClock.
class Fixture {
 public:
  // `trainer_body` is /bin/sh run as `trainer --spec=PATH`; $DIR is the attempt folder.
  // `configure` may change the agent's options. Energy comes from <dir>/powercap, which does not
  // exist unless a test makes it (so the power model), never from the machine's own counters.
  explicit Fixture(const std::string& trainer_body,
                   const std::function<void(AgentOptions&)>& configure = nullptr) {
    char pattern[] = "/tmp/scalelab_agent_test_XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    trainer_ = dir_ + "/fake-train.sh";
    std::ofstream(trainer_) << "#!/bin/sh\nSPEC=\"${1#--spec=}\"\nDIR=$(dirname \"$SPEC\")\n"
                            << "echo \"$@\" > \"$DIR/argv.txt\"\n"
                            << trainer_body << "\n";
    REQUIRE(::chmod(trainer_.c_str(), 0755) == 0);

    auto server = services::StartGrpcServer("127.0.0.1:0", {&scheduler});
    REQUIRE(server.ok());
    server_ = std::move(server->server);

    AgentOptions options;
    options.scheduler_address = "127.0.0.1:" + std::to_string(server->port);
    options.name = "agent-test";
    options.trainer_path = trainer_;
    options.data_root = dir_;
    options.work_dir = dir_ + "/work";
    options.metrics_address = "";
    options.lease_poll_interval = absl::Milliseconds(100);
    options.rpc_timeout = absl::Seconds(5);
    options.clock = &clock;
    options.energy.powercap_root = dir_ + "/powercap";
    options.energy.use_nvml = false;
    if (configure) configure(options);
    auto agent = Agent::Create(options);
    REQUIRE(agent.ok());
    agent_ = *std::move(agent);
  }
  ~Fixture() {
    if (thread_.joinable()) {
      agent_->Stop();
      // Shutdown's deadlines run on the FakeClock: move it until the loop has ended, so a test
      // that failed with a child still running ends too instead of hanging.
      while (!run_returned_.HasBeenNotified()) {
        clock.Advance(absl::Seconds(1));
        run_returned_.WaitForNotificationWithTimeout(absl::Milliseconds(20));
      }
      thread_.join();
    }
    server_->Shutdown();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void Start() {
    thread_ = std::thread([this] {
      CHECK(agent_->Run().ok());
      run_returned_.Notify();
    });
  }
  std::string AttemptDir(int64_t run_id, int attempt = 1) const {
    return dir_ + "/work/run-" + std::to_string(run_id) + "-" + std::to_string(attempt);
  }
  const std::string& dir() const { return dir_; }

  services::FakeClock clock;
  FakeWorkerService scheduler;

 private:
  std::string dir_;
  std::string trainer_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Agent> agent_;
  std::thread thread_;
  absl::Notification run_returned_;
};

size_t PointsOf(const std::vector<v1::ReportMetricsRequest>& reports) {
  size_t points = 0;
  for (const auto& report : reports) points += report.points_size();
  return points;
}

TEST_CASE("A leased run's spec.json is written and the trainer started with --spec=",
          "[unit][worker]") {
  Fixture f("exit 0");
  f.scheduler.Offer(LeaseOfRun(kRunId));
  f.Start();
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const std::string attempt_dir = fs::absolute(f.AttemptDir(kRunId)).string();
  CHECK(ReadAll(f.AttemptDir(kRunId) + "/argv.txt") == "--spec=" + attempt_dir + "/spec.json\n");
  auto spec = runspec::ReadRunSpecFile(attempt_dir + "/spec.json");
  REQUIRE(spec.ok());
  CHECK(spec->run_id() == kRunId);
  CHECK(spec->output_dir() == attempt_dir);
  CHECK(spec->config().data().sources().at("web") == f.dir() + "/data/web");
  CHECK(spec->execution().device() == "cpu");
  const v1::CompleteRunRequest done = f.scheduler.completions()[0];
  CHECK(done.succeeded());
  CHECK(done.exit_code() == 0);
}

TEST_CASE("Metric lines are forwarded in one batch per report interval, not one call per line",
          "[unit][worker]") {
  // Two points, then wait for the test's go-ahead before ending.
  Fixture f(
      "echo '{\"step\":1,\"tokens\":100,\"name\":\"train_loss\",\"value\":3.0}'\n"
      "echo '{\"step\":2,\"tokens\":200,\"name\":\"train_loss\",\"value\":2.5}'\n"
      "touch \"$DIR/printed\"\n"
      "while [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\n"
      "exit 0");
  f.scheduler.Offer(LeaseOfRun(kRunId));
  f.Start();
  REQUIRE(WaitFor([&] { return fs::exists(f.AttemptDir(kRunId) + "/printed"); }));
  // Both lines are in the pipe; the clock has not moved, so no batch is due yet.
  absl::SleepFor(absl::Milliseconds(300));
  CHECK(PointsOf(f.scheduler.metric_reports()) == 0);

  f.clock.Advance(absl::Milliseconds(500));  // one report interval
  REQUIRE(WaitFor([&] { return PointsOf(f.scheduler.metric_reports()) == 2; }));
  const auto reports = f.scheduler.metric_reports();
  CHECK(reports.size() == 1);  // both points in one call
  CHECK(reports[0].run_id() == kRunId);
  CHECK(reports[0].attempt() == 1);
  CHECK(reports[0].points(0).name() == "train_loss");
  CHECK(reports[0].points(1).value() == 2.5);

  std::ofstream(f.AttemptDir(kRunId) + "/go") << "";
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  CHECK(PointsOf(f.scheduler.metric_reports()) == 2);  // nothing sent twice
}

TEST_CASE("An artifact line is reported with its size and sha256, then the run completes",
          "[unit][worker]") {
  // The final weights after the last metric line has been sent: the report that carries them
  // has no points to go with it.
  Fixture f(
      "echo '{\"step\":2,\"tokens\":200,\"name\":\"train_loss\",\"value\":2.5}'\n"
      "touch \"$DIR/printed\"\n"
      "while [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\n"
      "printf 'abc' > \"$DIR/final.pt\"\n"
      "echo "
      "\"{\\\"artifact\\\":\\\"final\\\",\\\"path\\\":\\\"$DIR/final.pt\\\",\\\"step\\\":2}\"\n"
      "exit 0");
  f.scheduler.Offer(LeaseOfRun(kRunId));
  f.Start();
  REQUIRE(WaitFor([&] { return fs::exists(f.AttemptDir(kRunId) + "/printed"); }));
  absl::SleepFor(absl::Milliseconds(300));
  f.clock.Advance(absl::Milliseconds(500));
  REQUIRE(WaitFor([&] { return PointsOf(f.scheduler.metric_reports()) == 1; }));
  std::ofstream(f.AttemptDir(kRunId) + "/go") << "";
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const auto reports = f.scheduler.artifact_reports();
  REQUIRE(reports.size() == 1);
  REQUIRE(reports[0].artifacts_size() == 1);
  const v1::Artifact& artifact = reports[0].artifacts(0);
  CHECK(reports[0].run_id() == kRunId);
  CHECK(artifact.kind() == "final");
  CHECK(artifact.step() == 2);
  CHECK(artifact.location() == fs::absolute(f.AttemptDir(kRunId)).string() + "/final.pt");
  CHECK(artifact.size_bytes() == 3);
  // sha256("abc")
  CHECK(artifact.sha256() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(f.scheduler.completions()[0].succeeded());
}

TEST_CASE("Run records are forwarded without points and the final one before CompleteRun",
          "[unit][worker]") {
  Fixture f(
      "echo '{\"record\":\"run\",\"family\":\"transformer\",\"n_params\":1000,"
      "\"n_params_total\":1200,\"flops_per_token\":7000,\"tokens\":0,\"flops\":0}'\n"
      "touch \"$DIR/printed\"\n"
      "while [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\n"
      "echo '{\"step\":5,\"tokens\":5120,\"name\":\"train_loss\",\"value\":2.5}'\n"
      "echo '{\"record\":\"run\",\"family\":\"transformer\",\"n_params\":1000,"
      "\"n_params_total\":1200,\"flops_per_token\":7000,\"tokens\":5120,"
      "\"flops\":35840000}'\n"
      "exit 0");
  f.scheduler.Offer(LeaseOfRun(kRunId));
  f.Start();
  REQUIRE(WaitFor([&] { return fs::exists(f.AttemptDir(kRunId) + "/printed"); }));
  absl::SleepFor(absl::Milliseconds(300));  // the record line is in the pipe
  f.clock.Advance(absl::Milliseconds(500));
  REQUIRE(WaitFor([&] {
    for (const auto& report : f.scheduler.metric_reports()) {
      if (report.has_record()) return true;
    }
    return false;
  }));
  std::vector<v1::ReportMetricsRequest> reports = f.scheduler.metric_reports();
  const v1::ReportMetricsRequest& first = reports.back();
  CHECK(first.points_size() == 0);  // a record alone is worth a report
  CHECK(first.record().n_params() == 1000);
  CHECK(first.record().n_params_total() == 1200);
  CHECK(first.record().flops_per_token() == 7000);
  CHECK(first.record().family() == "transformer");
  CHECK(first.record().tokens() == 0);

  f.clock.Advance(absl::Milliseconds(500));  // nothing new: the record is not sent again
  absl::SleepFor(absl::Milliseconds(300));
  CHECK(f.scheduler.metric_reports().size() == reports.size());

  std::ofstream(f.AttemptDir(kRunId) + "/go") << "";
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  reports = f.scheduler.metric_reports();
  const std::vector<std::string> events = f.scheduler.events();
  REQUIRE(events.size() >= 2);
  CHECK(events.back() == "CompleteRun");
  CHECK(events[events.size() - 2] == "ReportMetrics");
  const v1::ReportMetricsRequest& last = reports.back();
  REQUIRE(last.has_record());
  CHECK(last.record().tokens() == 5120);
  CHECK(last.record().flops() == 35840000);
  CHECK(PointsOf(reports) == 1);
}

TEST_CASE("CompleteRun carries the attempt's energy from the power model without counters",
          "[unit][worker]") {
  Fixture f("touch \"$DIR/started\"\nwhile [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\nexit 0",
            [](AgentOptions& options) { options.energy.cpu_slot_watts = 12; });
  v1::Lease lease = LeaseOfRun(kRunId);
  lease.mutable_spec()->mutable_config()->mutable_resources()->set_cpus(1);
  f.scheduler.Offer(lease);
  f.Start();
  REQUIRE(WaitFor([&] { return fs::exists(f.AttemptDir(kRunId) + "/started"); }));
  f.clock.Advance(absl::Seconds(10));
  std::ofstream(f.AttemptDir(kRunId) + "/go") << "";
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const v1::EnergyReport energy = f.scheduler.completions()[0].energy();
  CHECK(energy.source() == "model");
  CHECK(energy.device_kind() == "cpu");
  CHECK(energy.devices() == 1);
  CHECK(energy.wall_s() == 10);  // on the agent's clock
  CHECK(energy.device_seconds() == 10);
  CHECK(energy.energy_j() == Approx(120));  // 1 slot x 12 W x 10 s
}

TEST_CASE("CompleteRun carries the RAPL energy of the run's share of the node's slots",
          "[unit][worker]") {
  // The trainer itself moves the fake package counter by 5 J while it runs.
  Fixture f(
      "touch \"$DIR/started\"\n"
      "while [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\n"
      "echo 6000000 > \"$DIR/../../powercap/intel-rapl:0/energy_uj\"\n"
      "exit 0",
      [](AgentOptions& options) { options.cpu_slots = 4; });
  const std::string zone = f.dir() + "/powercap/intel-rapl:0";
  fs::create_directories(zone);
  std::ofstream(zone + "/name") << "package-0\n";
  std::ofstream(zone + "/max_energy_range_uj") << "262143328850\n";
  std::ofstream(zone + "/energy_uj") << "1000000\n";
  v1::Lease lease = LeaseOfRun(kRunId);
  lease.mutable_spec()->mutable_config()->mutable_resources()->set_cpus(2);
  f.scheduler.Offer(lease);
  f.Start();
  REQUIRE(WaitFor([&] { return fs::exists(f.AttemptDir(kRunId) + "/started"); }));
  f.clock.Advance(absl::Seconds(4));
  std::ofstream(f.AttemptDir(kRunId) + "/go") << "";
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const v1::EnergyReport energy = f.scheduler.completions()[0].energy();
  CHECK(energy.source() == "rapl");
  CHECK(energy.devices() == 2);
  CHECK(energy.energy_j() == Approx(5.0 * 2 / 4));  // 2 of the node's 4 slots
  CHECK(energy.device_seconds() == 8);
}

TEST_CASE("A trainer exiting 5 completes the run as FAILURE_CLASS_OUT_OF_MEMORY",
          "[unit][worker]") {
  Fixture f("echo 'CUDA out of memory' >&2\nexit 5");
  f.scheduler.Offer(LeaseOfRun(kRunId));
  f.Start();
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const v1::CompleteRunRequest done = f.scheduler.completions()[0];
  CHECK_FALSE(done.succeeded());
  CHECK(done.exit_code() == 5);
  CHECK(done.failure_class() == v1::FAILURE_CLASS_OUT_OF_MEMORY);
  CHECK(done.message().find("CUDA out of memory") != std::string::npos);
}

TEST_CASE("A heartbeat answering stop kills the child and the run completes as cancelled",
          "[unit][worker]") {
  Fixture f("touch \"$DIR/started\"\nsleep 1000\nexit 0");
  f.scheduler.Offer(LeaseOfRun(kRunId));
  f.Start();
  REQUIRE(WaitFor([&] { return fs::exists(f.AttemptDir(kRunId) + "/started"); }));
  absl::SleepFor(absl::Milliseconds(200));
  CHECK(f.scheduler.completions().empty());  // still running: no heartbeat is due yet

  f.scheduler.StopOnHeartbeat(kRunId, 1);
  f.clock.Advance(absl::Seconds(1));  // one heartbeat interval
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const v1::CompleteRunRequest done = f.scheduler.completions()[0];
  CHECK_FALSE(done.succeeded());
  CHECK(done.term_signal() == SIGTERM);
  CHECK(done.failure_class() == v1::FAILURE_CLASS_CANCELLED);
}

TEST_CASE("A gang's rank 1 reports no metrics, heartbeats and completes with its rank",
          "[unit][worker]") {
  Fixture f(
      "echo '{\"step\":1,\"tokens\":100,\"name\":\"train_loss\",\"value\":3.0}'\n"
      "touch \"$DIR/printed\"\n"
      "while [ ! -e \"$DIR/go\" ]; do sleep 0.02; done\n"
      "exit 0",
      [](AgentOptions& options) { options.address = "10.1.2.3"; });
  v1::Lease lease = LeaseOfRun(kRunId);
  lease.mutable_spec()->mutable_config()->mutable_resources()->set_ranks(2);
  v1::ExecutionSpec& execution = *lease.mutable_spec()->mutable_execution();
  execution.set_rank(1);
  execution.set_world_size(2);
  execution.set_rendezvous("10.0.0.9:29417");
  execution.set_backend("gloo");
  f.scheduler.Offer(lease);
  f.Start();
  // Its own attempt folder: ranks of one run may share a work_dir.
  const std::string dir = f.AttemptDir(kRunId) + "-rank1";
  REQUIRE(WaitFor([&] { return fs::exists(dir + "/printed"); }));
  auto spec = runspec::ReadRunSpecFile(dir + "/spec.json");
  REQUIRE(spec.ok());
  CHECK(spec->execution().rank() == 1);
  CHECK(spec->execution().rendezvous() == "10.0.0.9:29417");

  f.clock.Advance(absl::Seconds(1));  // a heartbeat and a report interval
  REQUIRE(WaitFor([&] {
    for (const v1::HeartbeatRequest& heartbeat : f.scheduler.heartbeats()) {
      if (heartbeat.running_size() == 1 && heartbeat.running(0).rank() == 1) return true;
    }
    return false;
  }));
  std::ofstream(dir + "/go") << "";
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const v1::CompleteRunRequest done = f.scheduler.completions()[0];
  CHECK(done.succeeded());
  CHECK(done.rank() == 1);
  CHECK(f.scheduler.metric_reports().empty());  // rank 0 reports the run
  REQUIRE(!f.scheduler.registrations().empty());
  CHECK(f.scheduler.registrations()[0].address() == "10.1.2.3");
}

constexpr char kEvalLines[] =
    "echo '{\"step\":1,\"tokens\":10,\"name\":\"train_loss\",\"value\":3,\"wall_time_s\":0.1}'\n"
    "echo '{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"t\",\"split\":\"test\",\"n\":4,"
    "\"k\":2,\"value\":0.5,\"problems\":8}'\n"
    "echo '{\"eval\":\"pass@k\",\"step\":1,\"task_set\":\"t\",\"split\":\"test\",\"n\":4,"
    "\"k\":5,\"value\":0.5,\"problems\":8}'\n"
    "exit 0";

TEST_CASE("Evaluation lines are sent with ReportEvals before the attempt completes",
          "[unit][worker]") {
  Fixture f(kEvalLines);
  f.scheduler.Offer(LeaseOfRun(kRunId));
  f.Start();
  REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
  const std::vector<v1::ReportEvalsRequest> reports = f.scheduler.eval_reports();
  REQUIRE(reports.size() == 1);
  REQUIRE(reports[0].evals_size() == 1);  // the k > n line was skipped
  CHECK(reports[0].run_id() == kRunId);
  CHECK(reports[0].attempt() == 1);
  CHECK(reports[0].evals(0).k() == 2);
  const std::vector<std::string> events = f.scheduler.events();
  CHECK(events.back() == "CompleteRun");
  CHECK(std::find(events.begin(), events.end(), "ReportEvals") < events.end() - 1);
}

TEST_CASE("Evaluation results a scheduler refuses or cannot take do not hold the attempt",
          "[unit][worker]") {
  for (grpc::StatusCode code :
       {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::UNIMPLEMENTED}) {
    Fixture f(kEvalLines);
    f.scheduler.AnswerEvals(grpc::Status(code, "no"));
    f.scheduler.Offer(LeaseOfRun(kRunId));
    f.Start();
    INFO(static_cast<int>(code));
    REQUIRE(WaitFor([&] { return f.scheduler.completions().size() == 1; }));
    CHECK(f.scheduler.completions()[0].succeeded());
    CHECK(f.scheduler.eval_reports().size() == 1);  // sent once, dropped, not retried
  }
}

}  // namespace
}  // namespace scalelab::worker
