// The launcher's pool policy and backends without a cluster: what PoolPlanner decides from a
// cluster summary and a job list, squeue parsing, the Pod manifest and the deploy/kubernetes
// manifests as kubectl reads them offline, and the scheduler's cluster summary.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "launcher/command.h"
#include "launcher/kubernetes_backend.h"
#include "launcher/pool.h"
#include "launcher/slurm_backend.h"
#include "scheduler/cluster_service.h"

namespace scalelab::launcher {
namespace {

std::string SlurmName(const std::string& id) { return "pool-" + id; }

v1::ClusterSummary Summary(int64_t pending, std::vector<std::pair<std::string, int>> workers) {
  v1::ClusterSummary summary;
  summary.set_pending_runs(pending);
  for (const auto& [name, active] : workers) {
    v1::WorkerSummary* worker = summary.add_workers();
    worker->set_name(name);
    worker->set_cpu_slots(1);
    worker->set_active_runs(active);
  }
  return summary;
}

JobStatus Job(const std::string& id, JobPhase phase, const std::string& state) {
  return JobStatus{id, phase, state};
}

TEST_CASE("The pool grows from zero with pending runs and never past max_workers",
          "[launcher][unit]") {
  PoolOptions options;
  options.max_workers = 3;
  PoolPlanner planner(options, SlurmName);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  CHECK(planner.Plan(Summary(0, {}), {}, t0).submit == 0);
  PoolDecision grow = planner.Plan(Summary(5, {}), {}, t0);
  CHECK(grow.submit == 3);
  for (const char* id : {"1", "2", "3"}) planner.Submitted(id, t0);
  // Queued jobs whose workers have not registered count as capacity: no second wave.
  std::vector<JobStatus> queued = {Job("1", JobPhase::kStarting, "PENDING"),
                                   Job("2", JobPhase::kRunning, "RUNNING"),
                                   Job("3", JobPhase::kRunning, "RUNNING")};
  CHECK(planner.Plan(Summary(5, {}), queued, t0 + absl::Seconds(1)).submit == 0);
  CHECK(planner.live_jobs() == 3);
}

TEST_CASE("Idle workers are cancelled only after the idle timeout with an empty queue",
          "[launcher][unit]") {
  PoolOptions options;
  options.max_workers = 2;
  options.idle_timeout = absl::Seconds(10);
  PoolPlanner planner(options, SlurmName);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  planner.Submitted("7", t0);
  planner.Submitted("8", t0);
  std::vector<JobStatus> running = {Job("7", JobPhase::kRunning, "RUNNING"),
                                    Job("8", JobPhase::kRunning, "RUNNING")};
  // 7 is busy, 8 idles from t0.
  auto busy = Summary(0, {{"pool-7", 1}, {"pool-8", 0}});
  CHECK(planner.Plan(busy, running, t0 + absl::Seconds(5)).cancel.empty());
  PoolDecision shrink = planner.Plan(busy, running, t0 + absl::Seconds(11));
  REQUIRE(shrink.cancel == std::vector<std::string>{"8"});
  CHECK(planner.live_jobs() == 1);
  // Runs waiting again: nothing is cancelled, however long a worker idled.
  auto waiting = Summary(3, {{"pool-7", 0}});
  CHECK(planner.Plan(waiting, running, t0 + absl::Seconds(60)).cancel.empty());
  // The released job ending is expected: not lost.
  std::vector<JobStatus> ended = {Job("7", JobPhase::kRunning, "RUNNING"),
                                  Job("8", JobPhase::kEnded, "CANCELLED")};
  CHECK(planner.Plan(Summary(0, {{"pool-7", 1}}), ended, t0 + absl::Seconds(61)).lost.empty());
}

TEST_CASE("A job Slurm killed is reported lost and replaced", "[launcher][unit]") {
  PoolOptions options;
  options.max_workers = 2;
  PoolPlanner planner(options, SlurmName);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (const char* state : {"NODE_FAIL", "TIMEOUT", "PREEMPTED", "CANCELLED", "FAILED"}) {
    CHECK(SlurmPhase(state) == JobPhase::kEnded);
  }
  // A busy worker's job dies: replaced now, before its run's lease expires.
  planner.Submitted("4", t0);
  CHECK(planner.Plan(Summary(0, {{"pool-4", 1}}), {Job("4", JobPhase::kRunning, "RUNNING")}, t0)
            .submit == 0);
  PoolDecision decision =
      planner.Plan(Summary(0, {{"pool-4", 1}}), {Job("4", JobPhase::kEnded, "NODE_FAIL")}, t0);
  REQUIRE(decision.lost.size() == 1);
  CHECK(decision.lost[0].state == "NODE_FAIL");
  CHECK(decision.submit == 1);
  // An idle worker's job that squeue no longer lists is lost, and replaced only for demand.
  planner.Submitted("5", t0);
  PoolDecision gone = planner.Plan(Summary(0, {}), {}, t0 + absl::Seconds(1));
  REQUIRE(gone.lost.size() == 1);
  CHECK(gone.lost[0].state == "GONE");
  CHECK(gone.submit == 0);
  PoolDecision min_kept = [&] {
    PoolOptions keep_one = options;
    keep_one.min_workers = 1;
    PoolPlanner with_minimum(keep_one, SlurmName);
    with_minimum.Submitted("6", t0);
    return with_minimum.Plan(Summary(0, {}), {Job("6", JobPhase::kEnded, "TIMEOUT")}, t0);
  }();
  CHECK(min_kept.lost.size() == 1);
  CHECK(min_kept.submit == 1);
}

TEST_CASE("squeue output is parsed, and a malformed line is named", "[launcher][unit]") {
  auto jobs = ParseSqueue("12|RUNNING\n13|PENDING\n14|CANCELLED by 0\n");
  REQUIRE(jobs.ok());
  REQUIRE(jobs->size() == 3);
  CHECK((*jobs)[0].phase == JobPhase::kRunning);
  CHECK((*jobs)[1].phase == JobPhase::kStarting);
  CHECK((*jobs)[2].state == "CANCELLED");
  CHECK((*jobs)[2].phase == JobPhase::kEnded);
  auto bad = ParseSqueue("12|RUNNING\nslurm_load_jobs error\n");
  REQUIRE(!bad.ok());
  CHECK(std::string(bad.status().message()).find("line 2") != std::string::npos);
}

TEST_CASE("Pool options and bad backend input are refused with the field named",
          "[launcher][unit]") {
  PoolOptions options;
  options.min_workers = 3;
  options.max_workers = 2;
  CHECK(std::string(options.Validate().message()).find("min_workers") != std::string::npos);
  WorkerTemplate worker;
  worker.scheduler_address = "127.0.0.1:1";
  worker.name_prefix = "bad name";
  SlurmOptions slurm;
  slurm.script_dir = slurm.log_dir = std::filesystem::temp_directory_path().string();
  auto backend = SlurmBackend::Create(worker, slurm);
  REQUIRE(!backend.ok());
  CHECK(std::string(backend.status().message()).find("bad name") != std::string::npos);
}

// kubectl's client-side checks without a cluster: `apply --dry-run=client` needs the API
// server's discovery even with --validate=false, so the offline check parses every object with
// `kubectl annotate --local` (decoding each document and its kind) and prints kind/name.
CommandResult KubectlLocal(const std::string& path) {
  auto result = RunCommand({"kubectl", "annotate", "--local", "--dry-run=client", "-o", "name",
                            "-f", path, "scalelab.dev/checked=true"},
                           "", 60);
  REQUIRE(result.ok());
  return *result;
}

TEST_CASE("The launcher's worker Pod manifest passes kubectl's offline check", "[launcher][unit]") {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("scalelab-pod-" + std::to_string(::getpid()) + ".json"))
                               .string();
  WorkerTemplate worker;
  worker.scheduler_address = "scalelab-scheduler:7070";
  worker.name_prefix = "gpu-pool";
  worker.gpus = 8;
  worker.cpu_slots = 8;
  {
    std::ofstream out(path);
    out << PodManifest(worker, KubernetesOptions{}, "abc123");
  }
  CommandResult result = KubectlLocal(path);
  std::filesystem::remove(path);
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  CHECK(result.out == "pod/gpu-pool-abc123\n");
  CHECK(PodManifest(worker, KubernetesOptions{}, "x").find("\"nvidia.com/gpu\": \"8\"") !=
        std::string::npos);
  // The binary's --dry_run prints the same manifest.
  auto printed =
      RunCommand({std::string(SCALELAB_BIN_DIR) + "/scalelab-launcher", "--backend=kubernetes",
                  "--dry_run", "--gpus=1", "--scheduler=scalelab-scheduler:7070"});
  REQUIRE(printed.ok());
  CHECK(printed->exit_code == 0);
  CHECK(printed->out.find("\"kind\": \"Pod\"") != std::string::npos);
}

TEST_CASE("deploy/kubernetes passes kubectl's offline check", "[launcher][unit]") {
  CommandResult result = KubectlLocal(std::string(SCALELAB_SOURCE_DIR) + "/deploy/kubernetes");
  INFO(result.err);
  REQUIRE(result.exit_code == 0);
  for (const char* object :
       {"deployment.apps/scalelab-scheduler", "service/scalelab-scheduler",
        "statefulset.apps/scalelab-postgres", "daemonset.apps/scalelab-worker",
        "configmap/scalelab-config", "role.rbac.authorization.k8s.io/scalelab-launcher",
        "rolebinding.rbac.authorization.k8s.io/scalelab-launcher",
        "serviceaccount/scalelab-launcher", "deployment.apps/scalelab-launcher"}) {
    CHECK(result.out.find(object) != std::string::npos);
  }
  // A broken file is caught (the check can fail).
  const std::string bad = (std::filesystem::temp_directory_path() / "scalelab-bad.yaml").string();
  {
    std::ofstream out(bad);
    out << "apiVersion: v1\nkind: Pod\nmetadata: {name: x\nspec: [\n";
  }
  CHECK(KubectlLocal(bad).exit_code != 0);
  std::filesystem::remove(bad);
}

TEST_CASE("The cluster summary counts pending demand and lists matching workers",
          "[launcher][unit]") {
  services::PlacementSnapshot snapshot;
  services::StoredPendingRun cpu_run;
  services::StoredPendingRun gang;
  gang.resources.set_gpus(2);
  gang.resources.set_ranks(4);
  snapshot.pending = {cpu_run, gang};
  services::StoredWorker ours;
  ours.worker_id = 3;
  ours.inventory.set_name("pool-17");
  ours.inventory.set_cpu_slots(2);
  ours.held.push_back({});
  services::StoredWorker other;
  other.inventory.set_name("laptop");
  other.held.push_back({});
  snapshot.workers = {ours, other};
  v1::ClusterSummary summary = scheduler::SummarizeCluster(snapshot, "pool-");
  CHECK(summary.pending_runs() == 2);
  CHECK(summary.pending_gpus() == 8);
  CHECK(summary.active_runs() == 2);
  REQUIRE(summary.workers_size() == 1);
  CHECK(summary.workers(0).name() == "pool-17");
  CHECK(summary.workers(0).active_runs() == 1);
}

}  // namespace
}  // namespace scalelab::launcher
