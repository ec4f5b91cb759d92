// scalelab-scheduler: flags -> SchedulerOptions, then run until SIGINT/SIGTERM.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler/scheduler.h"
#include "services/common/logging.h"
#include "services/common/signals.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070", "gRPC listen address host:port (port 0 = any)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics address host:port; empty disables it");
ABSL_FLAG(std::string, database_url, "",
          "libpq URI of the results store; empty starts a private PostgreSQL under --data_dir");
ABSL_FLAG(std::string, data_dir, ".scalelab", "folder for the embedded PostgreSQL cluster");
ABSL_FLAG(double, lease_ttl_s, 15, "seconds a lease lives without a heartbeat");
ABSL_FLAG(double, heartbeat_interval_s, 2, "seconds between worker heartbeats");
ABSL_FLAG(int, rendezvous_port_base, scalelab::services::RendezvousPorts{}.base,
          "gangs: rank 0 listens for its peers on port base + (lease token % "
          "--rendezvous_port_count) of its worker's --address");
ABSL_FLAG(int, rendezvous_port_count, scalelab::services::RendezvousPorts{}.count,
          "gangs: how many ports from --rendezvous_port_base rank 0 may listen on");
ABSL_FLAG(std::string, port_file, "",
          "if set, \"<grpc_port> <metrics_port>\" is written to this file once serving");
ABSL_FLAG(double, fit_interval_s, 2, "seconds between passes looking for finished fit groups");
ABSL_FLAG(int, fit_threads, 0, "threads per fit (grid starts, bootstrap refits); 0 = all cores");
ABSL_FLAG(std::string, fit_program, "",
          "the fit program; empty = scalelab-fit-group beside this binary");
ABSL_FLAG(double, pue, 1.2, "carbon reports: data-centre power usage effectiveness");
ABSL_FLAG(double, grid_g_per_kwh, 400, "carbon reports: grid intensity, g CO2e per kWh");
ABSL_FLAG(double, checkpoint_write_s, 30,
          "reliability reports: seconds to write a checkpoint, for expected ETTR and Young/Daly");
ABSL_FLAG(double, retry_base_backoff_s, 10,
          "seconds before the first retry after an infrastructure failure (doubles per retry)");
ABSL_FLAG(double, retry_max_backoff_s, 600, "cap of the retry backoff, seconds");
ABSL_FLAG(double, quarantine_cooldown_s, 600,
          "seconds a quarantined worker waits before its health checks can release it");
ABSL_FLAG(std::string, projects, "",
          "projects' GPU quotas and fair-share weights, NAME:GPU_QUOTA:WEIGHT[,...] "
          "(quota 0 = none; e.g. \"vision:16:2,nlp:0:1\"); stored in the projects table");
ABSL_FLAG(double, admission_period_s, 0.2, "seconds between admission passes (also on events)");
ABSL_FLAG(double, admission_timeout_s, 30,
          "seconds an admitted run waits for its worker to lease it before it is requeued");
ABSL_FLAG(bool, preemption, true,
          "let a waiting run preempt runs of a lower priority class (checkpoint, requeue)");
ABSL_FLAG(int, max_preemptions_per_pass, 4, "most preemptors one admission pass may start");
ABSL_FLAG(double, preemption_cooldown_s, 300,
          "seconds after its preemption before a run may be preempted again");
ABSL_FLAG(int, max_pending_per_queue, 2000,
          "pending runs per (project, priority) queue read by one admission pass; 0 = all");
ABSL_FLAG(double, leader_ttl_s, 5,
          "seconds the leader lease lives without renewal: a standby scheduler on the same "
          "database takes over this long after the leader dies");
ABSL_FLAG(std::string, scheduler_id, "",
          "name of this process in the leader lease; empty = host:pid:random");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");

namespace {

// "--projects=a:16:2,b:0:1" -> policies; a clear error naming the entry otherwise.
absl::StatusOr<std::vector<scalelab::scheduler::SchedulerOptions::ProjectPolicy>> ParseProjects(
    const std::string& text) {
  std::vector<scalelab::scheduler::SchedulerOptions::ProjectPolicy> projects;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(entry, ':');
    scalelab::scheduler::SchedulerOptions::ProjectPolicy project;
    if (parts.size() != 3 || parts[0].empty() || !absl::SimpleAtoi(parts[1], &project.gpu_quota) ||
        !absl::SimpleAtod(parts[2], &project.weight) || project.gpu_quota < 0 ||
        !(project.weight > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--projects: expected NAME:GPU_QUOTA:WEIGHT (quota >= 0, weight > 0), got \"",
          entry.substr(0, 200), "\""));
    }
    project.name = parts[0];
    projects.push_back(std::move(project));
  }
  return projects;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ScaleLab scheduler daemon: sweeps, runs, leases, results.");
  absl::ParseCommandLine(argc, argv);
  if (auto status = scalelab::services::InitLogging("scheduler", absl::GetFlag(FLAGS_log_level));
      !status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    return EXIT_FAILURE;
  }

  scalelab::scheduler::SchedulerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.metrics_address = absl::GetFlag(FLAGS_metrics_listen);
  options.database_url = absl::GetFlag(FLAGS_database_url);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.lease_ttl = absl::Seconds(absl::GetFlag(FLAGS_lease_ttl_s));
  options.heartbeat_interval = absl::Seconds(absl::GetFlag(FLAGS_heartbeat_interval_s));
  options.rendezvous.base = absl::GetFlag(FLAGS_rendezvous_port_base);
  options.rendezvous.count = absl::GetFlag(FLAGS_rendezvous_port_count);
  options.fitter.interval = absl::Seconds(absl::GetFlag(FLAGS_fit_interval_s));
  options.fitter.settings.threads = absl::GetFlag(FLAGS_fit_threads);
  options.fitter.settings.program = absl::GetFlag(FLAGS_fit_program);
  options.carbon.pue = absl::GetFlag(FLAGS_pue);
  options.carbon.grid_g_per_kwh = absl::GetFlag(FLAGS_grid_g_per_kwh);
  options.leader.ttl = absl::Seconds(absl::GetFlag(FLAGS_leader_ttl_s));
  options.leader.renew_interval = std::min(absl::Seconds(1), options.leader.ttl / 3);
  options.leader.holder = absl::GetFlag(FLAGS_scheduler_id);
  options.reliability.checkpoint_write_s = absl::GetFlag(FLAGS_checkpoint_write_s);
  options.retry.base_backoff = absl::Seconds(absl::GetFlag(FLAGS_retry_base_backoff_s));
  options.retry.max_backoff = absl::Seconds(absl::GetFlag(FLAGS_retry_max_backoff_s));
  options.quarantine.cooldown = absl::Seconds(absl::GetFlag(FLAGS_quarantine_cooldown_s));
  options.admission.period = absl::Seconds(absl::GetFlag(FLAGS_admission_period_s));
  options.admission.admission_timeout = absl::Seconds(absl::GetFlag(FLAGS_admission_timeout_s));
  options.admission.preemption.enabled = absl::GetFlag(FLAGS_preemption);
  options.admission.preemption.max_per_pass = absl::GetFlag(FLAGS_max_preemptions_per_pass);
  options.admission.preemption.cooldown = absl::Seconds(absl::GetFlag(FLAGS_preemption_cooldown_s));
  options.max_pending_per_queue = absl::GetFlag(FLAGS_max_pending_per_queue);
  auto projects = ParseProjects(absl::GetFlag(FLAGS_projects));
  if (!projects.ok()) {
    std::fprintf(stderr, "%s\n", std::string(projects.status().message()).c_str());
    return EXIT_FAILURE;
  }
  options.projects = *std::move(projects);

  // The signal thread must exist before any other thread so that all inherit the mask; the
  // scheduler it stops is published once started (a signal during start-up is seen after it).
  static std::atomic<bool> signalled{false};
  static std::atomic<scalelab::scheduler::Scheduler*> running{nullptr};
  scalelab::services::HandleTerminationSignals([](int signal_number) {
    spdlog::info("signal {} received", signal_number);
    signalled = true;
    if (auto* scheduler = running.load()) scheduler->Shutdown();
  });
  auto scheduler = scalelab::scheduler::Scheduler::Start(options);
  if (!scheduler.ok()) {
    spdlog::error("cannot start: {}", scheduler.status().ToString());
    return EXIT_FAILURE;
  }
  running = scheduler->get();
  if (signalled) (*scheduler)->Shutdown();
  std::string port_file = absl::GetFlag(FLAGS_port_file);
  if (!port_file.empty()) {
    // Written beside and renamed, so a script polling for the file never reads half of it.
    std::string tmp = port_file + ".tmp";
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      spdlog::error("cannot write --port_file {}", port_file);
      return EXIT_FAILURE;
    }
    std::fprintf(f, "%d %d\n", (*scheduler)->grpc_port(), (*scheduler)->metrics_port());
    std::fclose(f);
    std::rename(tmp.c_str(), port_file.c_str());
  }
  (*scheduler)->Wait();
  return EXIT_SUCCESS;
}
