// The Slurm launcher against a real single-node Slurm (scripts/slurm_local.sh: munged,
// slurmctld and slurmd as this user's background processes): the pool grows from zero when a
// sweep arrives, its runs complete on workers that ran as Slurm jobs, a job killed with scancel
// is noticed and replaced, and the pool shrinks back to zero when idle.
#include <signal.h>
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "launcher/command.h"
#include "launcher/slurm_backend.h"
#include "scalelab/v1/cluster.grpc.pb.h"
#include "services/api/grpc_server.h"
#include "services/common/run_state.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

constexpr char kPrefix[] = "sltest";

// Starts the private Slurm in `dir` for the test's lifetime; stops it (and every job) after.
class LocalSlurm {
 public:
  explicit LocalSlurm(const std::string& dir) : dir_(dir) {
    auto started = launcher::RunCommand(
        {"bash", std::string(SCALELAB_SOURCE_DIR) + "/scripts/slurm_local.sh", "start", dir_, "2"},
        "", 120);
    REQUIRE(started.ok());
    INFO(started->out << started->err);
    REQUIRE(started->exit_code == 0);
    ::setenv("SLURM_CONF", (dir_ + "/slurm.conf").c_str(), 1);
  }
  ~LocalSlurm() {
    launcher::RunCommand({"scancel", "--name", kPrefix}, "", 30).IgnoreError();
    launcher::RunCommand(
        {"bash", std::string(SCALELAB_SOURCE_DIR) + "/scripts/slurm_local.sh", "stop", dir_}, "",
        60)
        .IgnoreError();
  }

 private:
  std::string dir_;
};

// The launcher's events file: (event, job) pairs in order.
std::vector<std::pair<std::string, std::string>> ReadEvents(const std::string& path) {
  std::vector<std::pair<std::string, std::string>> events;
  std::ifstream in(path);
  std::string line;
  auto field = [&line](const std::string& name) {
    size_t at = line.find("\"" + name + "\": \"");
    if (at == std::string::npos) return std::string();
    at += name.size() + 5;
    return line.substr(at, line.find('"', at) - at);
  };
  while (std::getline(in, line)) events.emplace_back(field("event"), field("job"));
  return events;
}

std::vector<launcher::JobStatus> LiveJobs() {
  auto listed = launcher::RunCommand(
      {"squeue", "--noheader", "--states=all", std::string("--name=") + kPrefix, "--format=%i|%T"});
  REQUIRE(listed.ok());
  auto jobs = launcher::ParseSqueue(listed->out);
  REQUIRE(jobs.ok());
  std::vector<launcher::JobStatus> live;
  for (const auto& job : *jobs) {
    if (job.phase != launcher::JobPhase::kEnded) live.push_back(job);
  }
  return live;
}

template <typename Predicate>
bool WaitFor(Predicate done, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return done();
}

TEST_CASE("A sweep runs on worker agents that the launcher keeps as Slurm jobs",
          "[launcher][integration][slow]") {
  Stack stack;  // lease ttl 3 s: a killed worker's run is back in the queue within seconds
  LocalSlurm slurm(stack.dir() + "/slurm");
  const std::string address = absl::StrCat("127.0.0.1:", stack.scheduler().grpc_port());
  const std::string events = stack.dir() + "/launcher-events.jsonl";
  const std::string bin = SCALELAB_BIN_DIR;
  auto launcher = worker::ChildProcess::Spawn(
      {{bin + "/scalelab-launcher", "--backend=slurm", "--scheduler=" + address,
        std::string("--name_prefix=") + kPrefix, "--worker_binary=" + bin + "/scalelab-worker",
        absl::StrCat("--worker_args=--data_root=", stack.dir(), ",--work_dir=", stack.dir(),
                     "/work,--metrics_listen=,--trainer=", bin, "/scalelab-train"),
        "--cpu_slots=1", "--max_workers=2", "--idle_timeout_s=2", "--poll_interval_s=0.3",
        "--state_dir=" + stack.dir() + "/launcher", "--events_file=" + events},
       stack.dir() + "/launcher.log",
       "",
       {}});
  REQUIRE(launcher.ok());
  auto logs = [&] {
    std::ifstream in(stack.dir() + "/launcher.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  };

  // No demand, no jobs.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  CHECK(LiveJobs().empty());
  CHECK(ReadEvents(events).empty());

  auto submitted = stack.Submit(stack.Manifest("on-slurm", 2e4, "{train.seed: [1, 2, 3]}"));
  const int64_t sweep_id = submitted.sweep().id();

  // The pool grows to its maximum: two jobs for three pending runs.
  INFO("launcher log:\n" << logs());
  REQUIRE(WaitFor([] { return LiveJobs().size() == 2; }, 20));

  // Kill the job of a worker that runs a run, as Slurm would on a failed node.
  auto cluster = v1::ClusterService::NewStub(services::MakeChannel(address));
  std::string victim_job;
  REQUIRE(WaitFor(
      [&] {
        v1::GetClusterSummaryRequest request;
        request.set_name_prefix(std::string(kPrefix) + "-");
        v1::ClusterSummary summary;
        grpc::ClientContext context;
        if (!cluster->GetClusterSummary(&context, request, &summary).ok()) return false;
        for (const auto& worker : summary.workers()) {
          if (worker.active_runs() > 0) {
            victim_job = worker.name().substr(std::string(kPrefix).size() + 1);
            return true;
          }
        }
        return false;
      },
      30));
  auto killed = launcher::RunCommand({"scancel", victim_job});
  REQUIRE(killed.ok());
  REQUIRE(killed->exit_code == 0);

  // Every run completes, through workers that ran as Slurm jobs only.
  std::vector<v1::Run> runs = stack.WaitForRuns(
      sweep_id,
      [](const std::vector<v1::Run>& all) {
        for (const auto& run : all) {
          if (!services::IsTerminal(run.state())) return false;
        }
        return !all.empty();
      },
      120);
  for (const auto& run : runs) {
    INFO("run " << run.id() << ": " << run.message());
    CHECK(run.state() == v1::RUN_STATE_SUCCEEDED);
  }
  REQUIRE(runs.size() == 3);

  // The kill was noticed (lost) and a replacement job submitted after it.
  auto history = ReadEvents(events);
  std::set<std::string> submitted_jobs;
  bool lost = false;
  bool replaced = false;
  for (const auto& [event, job] : history) {
    if (event == "submitted") {
      submitted_jobs.insert(job);
      if (lost) replaced = true;
    }
    if (event == "lost" && job == victim_job) lost = true;
  }
  CHECK(submitted_jobs.count(victim_job) == 1);
  CHECK(lost);
  CHECK(replaced);
  CHECK(submitted_jobs.size() >= 3);

  // Idle with an empty queue, the pool shrinks back to zero: every job released, none left.
  REQUIRE(WaitFor([] { return LiveJobs().empty(); }, 30));
  history = ReadEvents(events);
  std::set<std::string> released;
  for (const auto& [event, job] : history) {
    if (event == "released") released.insert(job);
  }
  CHECK(released.size() + 1 == submitted_jobs.size());  // all but the killed one
  (*launcher)->Signal(SIGTERM);
}

}  // namespace
}  // namespace scalelab::testing
