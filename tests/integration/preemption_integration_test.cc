// Preemption end to end (issue 9): one worker with one CPU slot runs a low-priority run; a
// critical sweep arrives; the low run's trainer is told to stop (SIGTERM), writes a checkpoint and
// exits 7 (attempt PREEMPTED, one preemptions row with its reason); the critical run takes the
// freed slot and succeeds; the low run then resumes from that checkpoint and succeeds, its
// train_loss curve without a gap or a duplicate.
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/store/store.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

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

// The stored train_loss steps of a run, per attempt.
std::map<int32_t, std::vector<int64_t>> TrainLossSteps(Stack& stack, int64_t run_id) {
  v1::GetRunMetricsRequest request;
  request.set_run_id(run_id);
  request.add_names("train_loss");
  v1::GetRunMetricsResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.results().GetRunMetrics(&context, request, &response);
  if (!status.ok()) FAIL("GetRunMetrics: " << status.error_message());
  std::map<int32_t, std::vector<int64_t>> steps;
  for (const v1::MetricSeries& series : response.series()) {
    for (const v1::MetricPoint& point : series.points()) {
      steps[series.attempt()].push_back(point.step());
    }
  }
  return steps;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string WithPriority(const std::string& manifest, const std::string& priority) {
  return absl::StrCat("priority: ", priority, "\n", manifest);
}

TEST_CASE("A critical run preempts a running low run, which checkpoints and later resumes",
          "[integration][slow]") {
  Stack stack;
  stack.StartWorker(/*slots=*/1);
  // ~600 steps of 1024 tokens: long enough to still be running when the critical run arrives.
  const int64_t low_sweep =
      stack.Submit(WithPriority(stack.Manifest("low", 6e5, "{train.lr: [0.01]}"), "low"))
          .sweep()
          .id();
  const std::vector<v1::Run> low_runs = stack.WaitForRuns(
      low_sweep,
      [](const std::vector<v1::Run>& runs) {
        return runs.size() == 1 && runs[0].state() == v1::RUN_STATE_RUNNING && runs[0].step() > 0;
      },
      60);
  const int64_t low = low_runs[0].id();

  const int64_t critical_sweep =
      stack.Submit(WithPriority(stack.Manifest("critical", 2e4, "{train.lr: [0.02]}"), "critical"))
          .sweep()
          .id();
  const std::vector<v1::Run> critical_runs = stack.WaitForRuns(critical_sweep, AllEnded, 120);
  REQUIRE(critical_runs.size() == 1);
  CHECK(critical_runs[0].state() == v1::RUN_STATE_SUCCEEDED);
  CHECK(critical_runs[0].attempt() == 1);
  const int64_t critical = critical_runs[0].id();

  const std::vector<v1::Run> ended = stack.WaitForRuns(low_sweep, AllEnded, 180);
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].state() == v1::RUN_STATE_SUCCEEDED);
  REQUIRE(ended[0].attempt() == 2);

  services::StoreOptions options;
  options.url = stack.database_url();
  options.apply_migrations = false;
  auto store = services::Store::Open(options);
  REQUIRE(store.ok());
  // One preemption, recorded with its reason and the end of its victim.
  auto preemptions = (*store)->ListPreemptions(/*in_flight_only=*/false);
  REQUIRE(preemptions.ok());
  REQUIRE(preemptions->size() == 1);
  const services::PreemptionRecord& record = preemptions->at(0);
  CHECK(record.victim_run_id == low);
  CHECK(record.victim_attempt == 1);
  CHECK(record.preemptor_run_id == critical);
  CHECK(record.state == "done");
  CHECK(record.reason == absl::StrCat("critical run ", critical, " (sweep ", critical_sweep,
                                      ") needs 1 CPU slot on worker ", record.worker_id));
  // Attempt 1 ended PREEMPTED by the trainer's own exit 7 (it checkpointed), not by SIGKILL.
  auto attempts = (*store)->ListAttempts(low_sweep);
  REQUIRE(attempts.ok());
  REQUIRE(attempts->size() == 2);
  CHECK(attempts->at(0).failure_class == v1::FAILURE_CLASS_PREEMPTED);
  CHECK(attempts->at(0).term_signal == 0);
  INFO("attempt 1 evidence: " << attempts->at(0).evidence);
  CHECK(attempts->at(0).evidence.find("exited 7") != std::string::npos);
  REQUIRE(attempts->at(0).checkpoint_times.size() >= 1);
  // The critical run started after the victim had ended: its slot was held, not shared.
  auto critical_attempts = (*store)->ListAttempts(critical_sweep);
  REQUIRE(critical_attempts.ok());
  REQUIRE(critical_attempts->size() == 1);
  REQUIRE(attempts->at(0).ended_at.has_value());
  CHECK(critical_attempts->at(0).started_at >= *attempts->at(0).ended_at);
  CHECK(attempts->at(1).started_at >= critical_attempts->at(0).started_at);

  // Counted once on the scheduler's /metrics.
  const std::string metrics = HttpGet(stack.scheduler().metrics_port(), "/metrics");
  INFO("scheduler /metrics:\n" << metrics);
  CHECK(metrics.find("scalelab_scheduler_preemptions_total 1\n") != std::string::npos);

  // Attempt 2 resumed from attempt 1's last checkpoint.
  int64_t checkpoint_step = 0;
  {
    v1::ListArtifactsRequest request;
    request.set_run_id(low);
    v1::ListArtifactsResponse response;
    grpc::ClientContext context;
    REQUIRE(stack.results().ListArtifacts(&context, request, &response).ok());
    for (const v1::Artifact& artifact : response.artifacts()) {
      if (artifact.kind() == "checkpoint" && artifact.attempt() == 1) {
        checkpoint_step = std::max(checkpoint_step, artifact.step());
      }
    }
  }
  REQUIRE(checkpoint_step > 0);
  const std::string log =
      ReadFile(absl::StrCat(stack.dir(), "/worker-0/run-", low, "-2/stderr.log"));
  INFO("attempt 2 stderr:\n" << log);
  CHECK(log.find(absl::StrCat("resumed from step ", checkpoint_step, " ")) != std::string::npos);

  // No metric point lost or stored twice: attempt 1's steps end at the checkpoint, attempt 2's
  // start after it, and together they are evenly spaced up to the last step.
  std::map<int32_t, std::vector<int64_t>> steps = TrainLossSteps(stack, low);
  REQUIRE(steps.count(1) == 1);
  REQUIRE(steps.count(2) == 1);
  CHECK(steps[1].back() <= checkpoint_step);
  CHECK(steps[2].front() > checkpoint_step);
  std::vector<int64_t> all = steps[1];
  all.insert(all.end(), steps[2].begin(), steps[2].end());
  REQUIRE(all.size() >= 3);
  std::set<int64_t> distinct(all.begin(), all.end());
  CHECK(distinct.size() == all.size());
  const int64_t every = all[0];
  for (size_t idx = 1; idx + 1 < all.size(); ++idx) CHECK(all[idx] - all[idx - 1] == every);
  CHECK(all.back() == ended[0].step());
}

}  // namespace
}  // namespace scalelab::testing
