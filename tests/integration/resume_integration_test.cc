// Resume end to end: a trainer killed with SIGKILL after writing a checkpoint fails its attempt,
// the scheduler requeues the run, and the next attempt continues from the checkpoint with the
// same losses as a run that was never interrupted.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

// The sweep's runs all ended (successfully or not).
bool AllEnded(const std::vector<v1::Run>& runs) {
  if (runs.empty()) return false;
  for (const v1::Run& run : runs) {
    if (run.state() != v1::RUN_STATE_SUCCEEDED && run.state() != v1::RUN_STATE_FAILED &&
        run.state() != v1::RUN_STATE_CANCELLED) {
      return false;
    }
  }
  return true;
}

std::vector<v1::Artifact> ListArtifacts(Stack& stack, int64_t run_id) {
  v1::ListArtifactsRequest request;
  request.set_run_id(run_id);
  v1::ListArtifactsResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.results().ListArtifacts(&context, request, &response);
  if (!status.ok()) FAIL("ListArtifacts: " << status.error_message());
  return {response.artifacts().begin(), response.artifacts().end()};
}

// The stored train_loss of `attempt` of a run: step -> value.
std::map<int64_t, double> TrainLoss(Stack& stack, int64_t run_id, int32_t attempt) {
  v1::GetRunMetricsRequest request;
  request.set_run_id(run_id);
  request.add_names("train_loss");
  v1::GetRunMetricsResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.results().GetRunMetrics(&context, request, &response);
  if (!status.ok()) FAIL("GetRunMetrics: " << status.error_message());
  std::map<int64_t, double> points;
  for (const v1::MetricSeries& series : response.series()) {
    if (series.attempt() != attempt) continue;
    for (const v1::MetricPoint& point : series.points()) points[point.step()] = point.value();
  }
  return points;
}

// The pids of `parent`'s children (every thread's list: the worker spawns from any of them).
std::vector<pid_t> Children(pid_t parent) {
  std::vector<pid_t> children;
  std::error_code error;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", parent, "/task"), error)) {
    std::ifstream file(task.path() / "children");
    pid_t pid = 0;
    while (file >> pid) children.push_back(pid);
  }
  return children;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_CASE("A trainer killed after a checkpoint is retried and resumes with identical losses",
          "[integration][slow]") {
  Stack stack;
  stack.StartWorker(/*slots=*/1);
  // About 300 steps of 1024 tokens (5 s on an idle core), a checkpoint every 10 steps.
  const std::string manifest = stack.Manifest("resume", 3e5, "{checkpoint.every_steps: [10]}");
  const int64_t sweep = stack.Submit(manifest).sweep().id();
  const std::vector<v1::Run> queued = stack.ListRuns(sweep);
  REQUIRE(queued.size() == 1);
  const int64_t run_id = queued[0].id();

  // Wait until the store holds a checkpoint of attempt 1, then kill the trainer as the kernel's
  // OOM killer would: SIGKILL, no chance to clean up.
  int64_t stored_step = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (stored_step == 0 && std::chrono::steady_clock::now() < deadline) {
    for (const v1::Artifact& artifact : ListArtifacts(stack, run_id)) {
      if (artifact.kind() == "checkpoint") stored_step = std::max(stored_step, artifact.step());
    }
    if (stored_step == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(stored_step > 0);
  const std::vector<pid_t> trainers = Children(stack.worker(0).pid());
  REQUIRE(trainers.size() == 1);
  REQUIRE(::kill(trainers[0], SIGKILL) == 0);

  const std::vector<v1::Run> runs = stack.WaitForRuns(sweep, AllEnded, 120);
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].state() == v1::RUN_STATE_SUCCEEDED);
  REQUIRE(runs[0].attempt() == 2);

  // Attempt 2 says where it resumed: after the stored checkpoint, never from scratch.
  const std::string log =
      ReadFile(absl::StrCat(stack.dir(), "/worker-0/run-", run_id, "-2/stderr.log"));
  const size_t at = log.find("resumed from step ");
  INFO("attempt 2 stderr:\n" << log);
  REQUIRE(at != std::string::npos);
  int64_t resumed_step = 0;
  REQUIRE(absl::SimpleAtoi(std::vector<std::string>(absl::StrSplit(
                               log.substr(at + std::string("resumed from step ").size()), ' '))[0],
                           &resumed_step));
  CHECK(resumed_step >= stored_step);
  CHECK(resumed_step % 10 == 0);

  // The same manifest again, never interrupted.
  const int64_t reference_sweep =
      stack.Submit(stack.Manifest("reference", 3e5, "{checkpoint.every_steps: [10]}")).sweep().id();
  const std::vector<v1::Run> reference = stack.WaitForRuns(reference_sweep, AllEnded, 120);
  REQUIRE(reference.size() == 1);
  REQUIRE(reference[0].state() == v1::RUN_STATE_SUCCEEDED);
  REQUIRE(reference[0].attempt() == 1);

  const std::map<int64_t, double> expected = TrainLoss(stack, reference[0].id(), 1);
  const std::map<int64_t, double> second = TrainLoss(stack, run_id, 2);
  REQUIRE(!second.empty());
  CHECK(second.begin()->first > resumed_step);  // only the steps it trained
  CHECK(second.rbegin()->first == expected.rbegin()->first);
  for (const auto& [step, value] : second) {
    INFO("step " << step);
    REQUIRE(expected.count(step) == 1);
    CHECK(value == expected.at(step));
  }
}

}  // namespace
}  // namespace scalelab::testing
