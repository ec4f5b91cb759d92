// Fault tests (issue 9): real processes killed, frozen and restarted under a running sweep. A
// worker SIGKILLed mid-run: the run resumes from its checkpoint on the other worker with no
// metric point lost or stored twice. A worker SIGSTOPped: its lease expires, the run moves, and
// after SIGCONT its reports are refused by fencing. The scheduler SIGKILLed and restarted: every
// run completes exactly once. PostgreSQL restarted: both daemons recover and the sweep ends.
#include <signal.h>
#include <sys/types.h>

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

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "services/api/grpc_server.h"
#include "services/store/embedded_postgres.h"
#include "services/store/store.h"
#include "tests/integration/stack.h"
#include "tests/support/pg_harness.h"

namespace scalelab::testing {
namespace {

bool Ended(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_CANCELLED;
}

bool AllEnded(const std::vector<v1::Run>& runs) {
  return !runs.empty() && std::all_of(runs.begin(), runs.end(),
                                      [](const v1::Run& run) { return Ended(run.state()); });
}

std::unique_ptr<services::Store> OpenStore(const std::string& url) {
  services::StoreOptions options;
  options.url = url;
  options.pool_size = 1;
  options.apply_migrations = false;
  auto store = services::Store::Open(options);
  if (!store.ok()) FAIL("store: " << store.status().ToString());
  return *std::move(store);
}

std::vector<services::AttemptRecord> Attempts(const std::string& url, int64_t run_id) {
  auto attempts = OpenStore(url)->ListAttempts(0);
  if (!attempts.ok()) FAIL("ListAttempts: " << attempts.status().ToString());
  std::vector<services::AttemptRecord> of_run;
  for (const auto& attempt : *attempts) {
    if (attempt.run_id == run_id) of_run.push_back(attempt);
  }
  return of_run;
}

// Steps of the stored train_loss points, per attempt.
std::map<int32_t, std::vector<int64_t>> StoredSteps(Stack& stack, int64_t run_id) {
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

int64_t LatestCheckpointStep(Stack& stack, int64_t run_id) {
  v1::ListArtifactsRequest request;
  request.set_run_id(run_id);
  v1::ListArtifactsResponse response;
  grpc::ClientContext context;
  if (!stack.results().ListArtifacts(&context, request, &response).ok()) return 0;
  int64_t step = 0;
  for (const v1::Artifact& artifact : response.artifacts()) {
    if (artifact.kind() == "checkpoint") step = std::max(step, artifact.step());
  }
  return step;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The step a resumed attempt's trainer says it resumed from; -1 when it did not resume.
int64_t ResumedStep(const std::string& stderr_log) {
  const std::string marker = "resumed from step ";
  const size_t at = stderr_log.find(marker);
  if (at == std::string::npos) return -1;
  int64_t step = -1;
  std::vector<std::string> words = absl::StrSplit(stderr_log.substr(at + marker.size()), ' ');
  if (!absl::SimpleAtoi(words[0], &step)) return -1;
  return step;
}

// Value of the first sample of `name` whose labels contain `label` in Prometheus text.
double MetricValue(const std::string& text, const std::string& name, const std::string& label) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::StartsWith(line, name) || line.find(label) == absl::string_view::npos) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
  }
  return 0;
}

template <typename Predicate>
bool WaitUntil(Predicate done, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

TEST_CASE(
    "A worker killed mid-run: the run resumes from its checkpoint on the other worker and "
    "no metric point is lost or stored twice",
    "[integration][slow][faults]") {
  Stack stack;
  // Two nodes on one shared file system: the second finds the first one's checkpoints.
  const std::string shared = stack.dir() + "/shared";
  stack.StartWorker(1, shared);
  const int64_t sweep =
      stack.Submit(stack.Manifest("kill-worker", 2e5, "{checkpoint.every_steps: [10]}"))
          .sweep()
          .id();
  const int64_t run_id = stack.ListRuns(sweep).at(0).id();
  REQUIRE(WaitUntil([&] { return LatestCheckpointStep(stack, run_id) > 0; }, 120));
  const int64_t checkpoint = LatestCheckpointStep(stack, run_id);
  stack.StartWorker(1, shared);
  REQUIRE(::kill(stack.worker(0).pid(), SIGKILL) == 0);  // its trainer dies with it

  const std::vector<v1::Run> runs = stack.WaitForRuns(sweep, AllEnded, 180);
  REQUIRE(runs.at(0).state() == v1::RUN_STATE_SUCCEEDED);
  const std::vector<services::AttemptRecord> attempts = Attempts(stack.database_url(), run_id);
  REQUIRE(attempts.size() == 2);
  CHECK(attempts[0].failure_class == v1::FAILURE_CLASS_NODE_LOST);
  CHECK(attempts[1].worker_id != attempts[0].worker_id);  // on the other node
  CHECK(attempts[1].state == v1::RUN_STATE_SUCCEEDED);

  const int64_t resumed =
      ResumedStep(ReadFile(absl::StrCat(shared, "/run-", run_id, "-2/stderr.log")));
  CHECK(resumed >= checkpoint);
  // The run's curve: attempt 1 up to the resumed step, attempt 2 after it. Every step of the
  // logging stride appears exactly once from the first to the last.
  std::map<int32_t, std::vector<int64_t>> steps = StoredSteps(stack, run_id);
  REQUIRE(steps.count(1) == 1);
  REQUIRE(steps.count(2) == 1);
  std::vector<int64_t> curve;
  for (int64_t step : steps[1]) {
    if (step <= resumed) curve.push_back(step);
  }
  CHECK(steps[2].front() > resumed);
  curve.insert(curve.end(), steps[2].begin(), steps[2].end());
  REQUIRE(curve.size() >= 3);
  const int64_t stride = curve[1] - curve[0];
  REQUIRE(stride > 0);
  for (size_t i = 1; i < curve.size(); ++i) {
    INFO("step " << curve[i - 1] << " then " << curve[i]);
    REQUIRE(curve[i] - curve[i - 1] == stride);
  }
  CHECK(std::set<int64_t>(curve.begin(), curve.end()).size() == curve.size());

  // The worker pruned to checkpoint.keep (2) only what the store had recorded: the two newest.
  const int64_t newest = LatestCheckpointStep(stack, run_id);
  std::set<std::string> on_disk;
  for (const auto& entry :
       std::filesystem::directory_iterator(absl::StrCat(shared, "/run-", run_id, "-checkpoints"))) {
    on_disk.insert(entry.path().filename().string());
  }
  CHECK(on_disk == std::set<std::string>{absl::StrCat("ckpt-", newest - 10, ".pt"),
                                         absl::StrCat("ckpt-", newest, ".pt")});
}

TEST_CASE(
    "A frozen worker's lease expires, the run moves, and its reports after SIGCONT are "
    "refused by fencing",
    "[integration][slow][faults]") {
  Stack stack;
  stack.StartWorker(1);
  const int64_t sweep =
      stack.Submit(stack.Manifest("freeze", 2e5, "{train.lr: [0.01]}")).sweep().id();
  const int64_t run_id = stack.ListRuns(sweep).at(0).id();
  REQUIRE(WaitUntil([&] { return StoredSteps(stack, run_id)[1].size() >= 3; }, 120));
  const std::vector<services::AttemptRecord> first = Attempts(stack.database_url(), run_id);
  REQUIRE(first.size() == 1);

  // Freeze the worker and its trainer, as a hung node would be.
  const pid_t frozen = stack.worker(0).pid();
  REQUIRE(::kill(frozen, SIGSTOP) == 0);
  std::vector<pid_t> trainers;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", frozen, "/task"))) {
    std::ifstream children(task.path() / "children");
    pid_t pid = 0;
    while (children >> pid) trainers.push_back(pid);
  }
  for (pid_t trainer : trainers) ::kill(trainer, SIGSTOP);
  // A report already on the wire when the worker froze lands within this.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const size_t points_when_frozen = StoredSteps(stack, run_id)[1].size();
  stack.StartWorker(1);
  // The lease expires; the run is leased to the other worker.
  REQUIRE(WaitUntil(
      [&] {
        std::vector<services::AttemptRecord> attempts = Attempts(stack.database_url(), run_id);
        return attempts.size() == 2 && attempts[1].state == v1::RUN_STATE_RUNNING;
      },
      60));
  const int64_t fenced_before =
      static_cast<int64_t>(MetricValue(HttpGet(stack.scheduler().metrics_port(), "/metrics"),
                                       "scalelab_scheduler_fenced_reports_total", "Heartbeat"));
  for (pid_t trainer : trainers) ::kill(trainer, SIGCONT);
  REQUIRE(::kill(frozen, SIGCONT) == 0);

  // The stale worker's next heartbeat names its attempt with the old lease token: refused.
  REQUIRE(WaitUntil(
      [&] {
        return MetricValue(HttpGet(stack.scheduler().metrics_port(), "/metrics"),
                           "scalelab_scheduler_fenced_reports_total", "Heartbeat") > fenced_before;
      },
      30));
  // A report with the stale lease token, as the thawed worker would send it, is refused by name.
  auto channel = services::MakeChannel(absl::StrCat("127.0.0.1:", stack.scheduler().grpc_port()));
  auto workers = v1::WorkerService::NewStub(channel);
  v1::ReportMetricsRequest stale;
  stale.set_worker_id(first[0].worker_id);
  stale.set_run_id(run_id);
  stale.set_attempt(1);
  stale.set_lease_token(first[0].lease_token);
  v1::MetricPoint* point = stale.add_points();
  point->set_step(1'000'000);
  point->set_name("train_loss");
  point->set_value(1);
  v1::ReportMetricsResponse response;
  grpc::ClientContext context;
  const grpc::Status refused = workers->ReportMetrics(&context, stale, &response);
  CHECK(refused.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(refused.error_message().find("is not the current lease of run") != std::string::npos);

  const std::vector<v1::Run> runs = stack.WaitForRuns(sweep, AllEnded, 180);
  CHECK(runs.at(0).state() == v1::RUN_STATE_SUCCEEDED);
  const std::vector<services::AttemptRecord> attempts = Attempts(stack.database_url(), run_id);
  REQUIRE(attempts.size() == 2);
  CHECK(attempts[1].worker_id != attempts[0].worker_id);
  // Nothing of attempt 1 arrived after the freeze; the run's result is attempt 2's.
  std::map<int32_t, std::vector<int64_t>> steps = StoredSteps(stack, run_id);
  CHECK(steps[1].size() == points_when_frozen);
  CHECK(std::find(steps[1].begin(), steps[1].end(), 1'000'000) == steps[1].end());
  CHECK_FALSE(steps[2].empty());
}

// `scalelab-scheduler` as a child process over `url`; listen "127.0.0.1:0" on the first start.
std::unique_ptr<worker::ChildProcess> StartSchedulerProcess(const Stack& stack,
                                                            const std::string& url,
                                                            const std::string& listen,
                                                            const std::string& port_file, int n) {
  std::filesystem::remove(port_file);
  auto child = worker::ChildProcess::Spawn(
      {{absl::StrCat(SCALELAB_BIN_DIR, "/scalelab-scheduler"), "--database_url=" + url,
        "--listen=" + listen, "--metrics_listen=127.0.0.1:0", "--port_file=" + port_file,
        "--lease_ttl_s=6", "--heartbeat_interval_s=0.5", "--retry_base_backoff_s=0.2",
        "--retry_max_backoff_s=2", "--fit_interval_s=3600", "--data_dir=" + stack.dir()},
       absl::StrCat(stack.dir(), "/scheduler-", n, ".log"),
       "",
       {}});
  REQUIRE(child.ok());
  REQUIRE(WaitUntil([&] { return std::filesystem::exists(port_file); }, 60));
  return *std::move(child);
}

TEST_CASE("A scheduler killed mid-sweep and restarted completes every run exactly once",
          "[integration][slow][faults]") {
  Stack stack;  // its corpus and manifests; this sweep runs on a scheduler process of its own
  const std::string url = FreshDatabaseUrl();
  const std::string port_file = stack.dir() + "/scheduler.port";
  auto scheduler = StartSchedulerProcess(stack, url, "127.0.0.1:0", port_file, 0);
  int port = 0;
  std::istringstream(ReadFile(port_file)) >> port;
  REQUIRE(port > 0);
  for (int index = 0; index < 2; ++index) {
    const std::string work_dir = absl::StrCat(stack.dir(), "/sched-worker-", index);
    std::filesystem::create_directories(work_dir);
    auto child = worker::ChildProcess::Spawn(
        {stack.WorkerArgv(10 + index, 1, port, work_dir), absl::StrCat(work_dir, ".log"), "", {}});
    REQUIRE(child.ok());
    stack.AdoptWorker(*std::move(child));
  }
  auto sweeps = v1::SweepService::NewStub(services::MakeChannel(absl::StrCat("127.0.0.1:", port)));
  v1::SubmitSweepRequest submit;
  submit.set_manifest_yaml(stack.Manifest("restart", 1e5, "{train.lr: [0.01, 0.02, 0.03, 0.04]}"));
  submit.set_manifest_name("restart.yaml");
  v1::SubmitSweepResponse submitted;
  {
    grpc::ClientContext context;
    REQUIRE(sweeps->SubmitSweep(&context, submit, &submitted).ok());
  }
  const int64_t sweep = submitted.sweep().id();
  auto store = OpenStore(url);
  auto states = [&] {
    auto runs = store->ListRuns(sweep, v1::RUN_STATE_UNSPECIFIED, 0);
    return runs.ok() ? *runs : std::vector<v1::Run>();
  };
  // Kill it while runs are in flight: some finished or running, some still queued.
  REQUIRE(WaitUntil(
      [&] {
        std::vector<v1::Run> runs = states();
        return std::any_of(runs.begin(), runs.end(),
                           // Started: with the fork server a run can end between two polls.
                           [](const v1::Run& run) {
                             return run.state() == v1::RUN_STATE_RUNNING ||
                                    run.state() == v1::RUN_STATE_SUCCEEDED;
                           });
      },
      120));
  REQUIRE(::kill(scheduler->pid(), SIGKILL) == 0);
  scheduler->Wait();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  scheduler = StartSchedulerProcess(stack, url, absl::StrCat("127.0.0.1:", port), port_file, 1);

  REQUIRE(WaitUntil([&] { return AllEnded(states()); }, 240));
  const std::vector<v1::Run> runs = states();
  REQUIRE(runs.size() == 4);
  auto attempts = store->ListAttempts(sweep);
  REQUIRE(attempts.ok());
  for (const v1::Run& run : runs) {
    INFO("run " << run.id());
    CHECK(run.state() == v1::RUN_STATE_SUCCEEDED);
    int succeeded = 0;
    for (const auto& attempt : *attempts) {
      if (attempt.run_id == run.id() && attempt.state == v1::RUN_STATE_SUCCEEDED) ++succeeded;
    }
    CHECK(succeeded == 1);
  }
  scheduler->Signal(SIGTERM);
  scheduler->Wait();
}

TEST_CASE(
    "PostgreSQL restarted mid-sweep: the scheduler and the workers recover and the sweep "
    "completes",
    "[integration][slow][faults]") {
  char tmpl[] = "/tmp/scalelab_pgr_XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  services::EmbeddedPostgresOptions pg_options;
  pg_options.data_dir = tmpl;
  pg_options.port = 20000 + ::getpid() % 20000;
  pg_options.durable = false;
  auto postgres = services::EmbeddedPostgres::Start(pg_options);
  REQUIRE(postgres.ok());
  const std::string url = (*postgres)->ConnectionUrl();
  {
    Stack stack(absl::Seconds(6), url);
    stack.StartWorker(1);
    const int64_t sweep =
        stack.Submit(stack.Manifest("pg-restart", 1e5, "{train.lr: [0.01, 0.02, 0.03]}"))
            .sweep()
            .id();
    REQUIRE(WaitUntil(
        [&] {
          std::vector<v1::Run> runs = stack.ListRuns(sweep);
          // Started: with the fork server a run can end between two polls.
          return std::any_of(runs.begin(), runs.end(), [](const v1::Run& run) {
            return run.state() == v1::RUN_STATE_RUNNING || run.state() == v1::RUN_STATE_SUCCEEDED;
          });
        },
        120));
    REQUIRE((*postgres)->Stop().ok());
    std::this_thread::sleep_for(std::chrono::seconds(2));
    auto restarted = services::EmbeddedPostgres::Start(pg_options);
    REQUIRE(restarted.ok());
    REQUIRE((*restarted)->ConnectionUrl() == url);
    std::vector<v1::Run> runs;
    REQUIRE(WaitUntil(
        [&] {
          v1::ListRunsRequest request;
          request.set_sweep_id(sweep);
          v1::ListRunsResponse response;
          grpc::ClientContext context;
          if (!stack.sweeps().ListRuns(&context, request, &response).ok()) return false;
          runs.assign(response.runs().begin(), response.runs().end());
          return AllEnded(runs);
        },
        240));
    for (const v1::Run& run : runs) CHECK(run.state() == v1::RUN_STATE_SUCCEEDED);
    stack.scheduler().Shutdown();
    REQUIRE((*restarted)->Stop().ok());
  }
  std::error_code error;
  std::filesystem::remove_all(tmpl, error);
}

}  // namespace
}  // namespace scalelab::testing
