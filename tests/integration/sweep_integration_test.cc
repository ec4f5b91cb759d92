// End to end through real processes: gRPC on a real socket, PostgreSQL, `scalelab-worker`
// children that run `scalelab-train` children.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "services/common/run_state.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

// The single run of a sweep is RUNNING and its trainer has reported at least one step.
bool TrainingHasStarted(const std::vector<v1::Run>& runs) {
  return runs.size() == 1 && runs[0].state() == v1::RUN_STATE_RUNNING && runs[0].step() > 0;
}

bool AllIn(const std::vector<v1::Run>& runs, v1::RunState state) {
  if (runs.empty()) return false;
  for (const v1::Run& run : runs) {
    if (run.state() != state) return false;
  }
  return true;
}

TEST_CASE("A sweep submitted through the API runs to completion on real workers",
          "[integration][slow]") {
  Stack stack;
  stack.StartWorker(/*slots=*/2);
  auto submitted = stack.Submit(stack.Manifest("two-sizes", 3e4, "{model.d_model: [16, 32]}"));
  REQUIRE(submitted.created());
  const int64_t sweep_id = submitted.sweep().id();

  // Follow the sweep with the server stream until it ends.
  v1::WatchSweepRequest watch;
  watch.set_sweep_id(sweep_id);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(180));
  auto reader = stack.sweeps().WatchSweep(&context, watch);
  v1::SweepEvent event;
  int events = 0;
  while (reader->Read(&event)) ++events;
  grpc::Status status = reader->Finish();
  INFO("worker log:\n" << stack.WorkerLog(0));
  REQUIRE(status.ok());
  CHECK(events >= 2);
  REQUIRE(event.sweep().state() == v1::SWEEP_STATE_SUCCEEDED);

  std::vector<v1::Run> runs = stack.ListRuns(sweep_id);
  REQUIRE(runs.size() == 2);
  for (const v1::Run& run : runs) {
    CHECK(run.state() == v1::RUN_STATE_SUCCEEDED);
    CHECK(run.attempt() == 1);
    CHECK(run.tokens() >= 3e4);
    CHECK(std::isfinite(run.val_loss()));
    CHECK(run.val_loss() < std::log(256.0));

    v1::GetRunMetricsRequest request;
    request.set_run_id(run.id());
    request.add_names("val_loss");
    v1::GetRunMetricsResponse metrics;
    grpc::ClientContext metrics_context;
    REQUIRE(stack.results().GetRunMetrics(&metrics_context, request, &metrics).ok());
    REQUIRE(metrics.series_size() == 1);
    CHECK(metrics.series(0).points_size() >= 2);  // periodic + final evaluation
    CHECK(metrics.series(0).points().rbegin()->value() == run.val_loss());
  }

  v1::GetSweepCurvesRequest curves_request;
  curves_request.set_sweep_id(sweep_id);
  v1::GetSweepCurvesResponse curves;
  grpc::ClientContext curves_context;
  REQUIRE(stack.results().GetSweepCurves(&curves_context, curves_request, &curves).ok());
  CHECK(curves.curves_size() == 2);

  // Prometheus: the scheduler's gauges catch up within one reaper pass (250 ms here).
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  std::string scheduler_metrics = HttpGet(stack.scheduler().metrics_port(), "/metrics");
  CHECK_THAT(scheduler_metrics, Catch::Contains("scalelab_scheduler_runs{state=\"SUCCEEDED\"} 2"));
  CHECK_THAT(scheduler_metrics, Catch::Contains("scalelab_scheduler_workers{state=\"ALIVE\"} 1"));
  CHECK_THAT(scheduler_metrics, Catch::Contains("scalelab_scheduler_sweeps_submitted_total 1"));
  CHECK_THAT(scheduler_metrics, Catch::Contains("scalelab_scheduler_tokens_trained_total 61440"));
  CHECK_THAT(scheduler_metrics, Catch::Contains("scalelab_scheduler_metric_points_ingested_total"));
  std::string worker_metrics = HttpGet(stack.WorkerMetricsPort(0), "/metrics");
  CHECK_THAT(worker_metrics, Catch::Contains("scalelab_worker_slots 2"));
  CHECK_THAT(worker_metrics,
             Catch::Contains("scalelab_worker_runs_finished_total{outcome=\"succeeded\"} 2"));
  CHECK_THAT(worker_metrics, Catch::Contains("scalelab_worker_tokens_trained_total 61440"));
}

TEST_CASE("The same idempotency key twice creates one sweep", "[integration]") {
  Stack stack;
  std::string manifest = stack.Manifest("once", 3e4, "{model.d_model: [16, 32]}");
  auto first = stack.Submit(manifest, "retry-safe-key");
  auto second = stack.Submit(manifest, "retry-safe-key");
  CHECK(first.created());
  CHECK_FALSE(second.created());
  CHECK(second.sweep().id() == first.sweep().id());
  v1::ListSweepsRequest request;
  v1::ListSweepsResponse response;
  grpc::ClientContext context;
  REQUIRE(stack.sweeps().ListSweeps(&context, request, &response).ok());
  CHECK(response.sweeps_size() == 1);
  CHECK(stack.ListRuns(first.sweep().id()).size() == 2);
}

TEST_CASE("A bad manifest is refused with its line and nothing is stored", "[integration]") {
  Stack stack;
  v1::SubmitSweepRequest request;
  request.set_manifest_yaml(stack.Manifest("bad", 3e4, "{model.d_model: [16, big]}"));
  request.set_manifest_name("bad.yaml");
  v1::SubmitSweepResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.sweeps().SubmitSweep(&context, request, &response);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(status.error_message(), Catch::Contains("bad.yaml:11"));
  CHECK_THAT(status.error_message(), Catch::Contains("big"));
  v1::ListSweepsRequest list;
  v1::ListSweepsResponse sweeps;
  grpc::ClientContext list_context;
  REQUIRE(stack.sweeps().ListSweeps(&list_context, list, &sweeps).ok());
  CHECK(sweeps.sweeps_size() == 0);
}

TEST_CASE("A worker killed with SIGKILL loses its lease and its run is requeued and completes",
          "[integration][slow]") {
  Stack stack(absl::Seconds(3));
  int doomed = stack.StartWorker();
  auto submitted = stack.Submit(stack.Manifest("survivor", 2e6, "{model.d_model: [16]}"));
  const int64_t sweep_id = submitted.sweep().id();

  // Kill the worker once its trainer has reported progress.
  stack.WaitForRuns(sweep_id, TrainingHasStarted, 60);
  stack.worker(doomed).Signal(SIGKILL);

  // Nobody heartbeats: the lease expires and the run is pending again for a second attempt.
  auto requeued = stack.WaitForRuns(
      sweep_id,
      [](const std::vector<v1::Run>& runs) { return runs[0].state() == v1::RUN_STATE_PENDING; },
      30);
  CHECK(requeued[0].failure_class() == v1::FAILURE_CLASS_NODE_LOST);
  CHECK(requeued[0].attempt() == 1);

  stack.StartWorker();
  auto finished = stack.WaitForRuns(
      sweep_id,
      [](const std::vector<v1::Run>& runs) { return AllIn(runs, v1::RUN_STATE_SUCCEEDED); }, 180);
  CHECK(finished[0].attempt() == 2);
  CHECK(stack.GetSweep(sweep_id).state() == v1::SWEEP_STATE_SUCCEEDED);

  // Both attempts' points are kept apart.
  v1::GetRunMetricsRequest request;
  request.set_run_id(finished[0].id());
  request.add_names("train_loss");
  v1::GetRunMetricsResponse metrics;
  grpc::ClientContext context;
  REQUIRE(stack.results().GetRunMetrics(&context, request, &metrics).ok());
  REQUIRE(metrics.series_size() == 2);
  CHECK(metrics.series(0).attempt() == 1);
  CHECK(metrics.series(1).attempt() == 2);
}

TEST_CASE("Cancelling a running sweep stops its trainer and frees the slot",
          "[integration][slow]") {
  Stack stack;
  stack.StartWorker();
  auto long_sweep = stack.Submit(stack.Manifest("long", 5e6, "{model.d_model: [16]}"));
  stack.WaitForRuns(
      long_sweep.sweep().id(),
      [](const std::vector<v1::Run>& runs) { return runs[0].state() == v1::RUN_STATE_RUNNING; },
      60);
  v1::CancelSweepRequest cancel;
  cancel.set_sweep_id(long_sweep.sweep().id());
  cancel.set_reason("test");
  v1::Sweep cancelled;
  grpc::ClientContext context;
  REQUIRE(stack.sweeps().CancelSweep(&context, cancel, &cancelled).ok());
  CHECK(cancelled.state() == v1::SWEEP_STATE_CANCELLED);

  // The single slot is only free again once the cancelled trainer has stopped.
  auto next = stack.Submit(stack.Manifest("next", 2e4, "{model.d_model: [16]}"));
  stack.WaitForRuns(
      next.sweep().id(),
      [](const std::vector<v1::Run>& runs) { return AllIn(runs, v1::RUN_STATE_SUCCEEDED); }, 120);
  CHECK(stack.ListRuns(long_sweep.sweep().id())[0].state() == v1::RUN_STATE_CANCELLED);
}

TEST_CASE("A worker stopped with SIGTERM hands its run back at once", "[integration][slow]") {
  // A long lease: the run must come back because the worker said so, not because it expired.
  Stack stack(absl::Seconds(60));
  int leaving = stack.StartWorker();
  auto submitted = stack.Submit(stack.Manifest("handback", 2e6, "{model.d_model: [16]}"));
  const int64_t sweep_id = submitted.sweep().id();
  stack.WaitForRuns(sweep_id, TrainingHasStarted, 60);
  stack.worker(leaving).Signal(SIGTERM);
  // Back in the queue: PENDING, or already ADMITTED again by the next admission pass (the
  // stopped worker is still registered until its heartbeats lapse; the admission is requeued
  // when it is not leased).
  auto requeued = stack.WaitForRuns(
      sweep_id,
      [](const std::vector<v1::Run>& runs) {
        return runs[0].state() == v1::RUN_STATE_PENDING ||
               runs[0].state() == v1::RUN_STATE_ADMITTED;
      },
      15);
  CHECK(requeued[0].failure_class() == v1::FAILURE_CLASS_PREEMPTED);
  CHECK(requeued[0].attempt() == 1);
  std::optional<worker::ExitInfo> exit;
  for (int i = 0; i < 100 && !exit; ++i) {
    exit = stack.worker(leaving).Poll();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(exit.has_value());
  CHECK(exit->exit_code == 0);
}

// Children of `parent` whose command name is `name`, from /proc.
std::vector<int> ChildrenNamed(int parent, const std::string& name) {
  std::vector<int> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::ifstream stat(entry.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid ...
    size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    int ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && comm == name && state != "Z") pids.push_back(std::stoi(line));
  }
  return pids;
}

// The trainers of worker `worker_pid`: its children named scalelab-train, and the children of its
// fork server (`scalelab-train --serve`, named scalelab-forksv) when it has one.
std::vector<int> TrainersOf(int worker_pid) {
  std::vector<int> trainers = ChildrenNamed(worker_pid, "scalelab-train");
  for (int server : ChildrenNamed(worker_pid, "scalelab-forksv")) {
    for (int trainer : ChildrenNamed(server, "scalelab-train")) trainers.push_back(trainer);
  }
  return trainers;
}

TEST_CASE("A worker cut off from the scheduler stops its trainers once its lease must be gone",
          "[integration][slow]") {
  Stack stack(absl::Seconds(3));
  int isolated = stack.StartWorker();
  auto submitted = stack.Submit(stack.Manifest("isolated", 5e6, "{model.d_model: [16]}"));
  stack.WaitForRuns(submitted.sweep().id(), TrainingHasStarted, 60);
  const int worker_pid = stack.worker(isolated).pid();
  REQUIRE(TrainersOf(worker_pid).size() == 1);

  // The scheduler goes away; past one lease ttl without an answered heartbeat the run may be
  // training elsewhere, so the worker must have stopped its copy.
  stack.scheduler().Shutdown();
  std::vector<int> trainers;
  for (int i = 0; i < 100; ++i) {
    trainers = TrainersOf(worker_pid);
    if (trainers.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO("worker log:\n" << stack.WorkerLog(isolated));
  CHECK(trainers.empty());
  CHECK_FALSE(stack.worker(isolated).Poll().has_value());  // the worker itself keeps trying
}

}  // namespace
}  // namespace scalelab::testing
