// scalelab-worker: flags -> AgentOptions, then run until SIGINT/SIGTERM.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "services/common/logging.h"
#include "services/common/signals.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"

ABSL_FLAG(std::string, scheduler, "127.0.0.1:7070", "scheduler gRPC address host:port");
ABSL_FLAG(std::string, name, "", "worker name; empty = hostname:pid");
ABSL_FLAG(std::string, address, "",
          "host other workers reach this one at (a gang's rendezvous when its rank 0 runs here); "
          "empty = hostname");
ABSL_FLAG(int, cpu_slots, 1, "runs executed at once");
ABSL_FLAG(int, threads_per_run, 1, "intra-op threads of each trainer");
ABSL_FLAG(std::string, trainer, "", "scalelab-train binary; empty = next to this binary");
ABSL_FLAG(int64_t, min_free_disk_bytes, int64_t{1} << 30,
          "the disk health check fails below this much free space under --work_dir");
ABSL_FLAG(std::string, data_root, ".", "folder that relative data sources are resolved against");
ABSL_FLAG(std::string, work_dir, ".scalelab/worker", "per-attempt folders with trainer logs");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:0",
          "Prometheus /metrics address host:port; empty disables it; port 0 = any");
ABSL_FLAG(bool, fork_server, true,
          "start trainers through one scalelab-train --serve fork server (the runtime loads "
          "once, not per run); falls back to fork/exec when it cannot start");
ABSL_FLAG(double, preempt_grace_s, 120,
          "seconds a preempted trainer may take to checkpoint and exit before it is killed");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");
// Energy flags take their defaults from EnergyOptions (worker/energy.h), their one home.
ABSL_FLAG(std::string, powercap_root, scalelab::worker::EnergyOptions{}.powercap_root,
          "RAPL powercap zones for CPU-run energy; empty = use the power model");
ABSL_FLAG(bool, nvml, scalelab::worker::EnergyOptions{}.use_nvml,
          "measure GPU-run energy with NVML; false = use the power model");
ABSL_FLAG(double, cpu_slot_watts, scalelab::worker::EnergyOptions{}.cpu_slot_watts,
          "power model: watts per CPU slot of a running attempt");
ABSL_FLAG(double, gpu_watts, scalelab::worker::EnergyOptions{}.gpu_watts,
          "power model: watts per GPU of a running attempt");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("ScaleLab worker agent: leases runs and supervises trainers.");
  absl::ParseCommandLine(argc, argv);
  if (auto status = scalelab::services::InitLogging("worker", absl::GetFlag(FLAGS_log_level));
      !status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
    return EXIT_FAILURE;
  }

  scalelab::worker::AgentOptions options;
  options.scheduler_address = absl::GetFlag(FLAGS_scheduler);
  options.name = absl::GetFlag(FLAGS_name);
  options.address = absl::GetFlag(FLAGS_address);
  options.cpu_slots = absl::GetFlag(FLAGS_cpu_slots);
  options.threads_per_run = absl::GetFlag(FLAGS_threads_per_run);
  options.trainer_path = absl::GetFlag(FLAGS_trainer);
  options.data_root = absl::GetFlag(FLAGS_data_root);
  options.min_free_disk_bytes = absl::GetFlag(FLAGS_min_free_disk_bytes);
  options.work_dir = absl::GetFlag(FLAGS_work_dir);
  options.fork_server = absl::GetFlag(FLAGS_fork_server);
  options.preempt_grace = absl::Seconds(absl::GetFlag(FLAGS_preempt_grace_s));
  options.metrics_address = absl::GetFlag(FLAGS_metrics_listen);
  options.energy.powercap_root = absl::GetFlag(FLAGS_powercap_root);
  options.energy.use_nvml = absl::GetFlag(FLAGS_nvml);
  options.energy.cpu_slot_watts = absl::GetFlag(FLAGS_cpu_slot_watts);
  options.energy.gpu_watts = absl::GetFlag(FLAGS_gpu_watts);

  static std::atomic<scalelab::worker::Agent*> running{nullptr};
  static std::atomic<bool> signalled{false};
  scalelab::services::HandleTerminationSignals([](int signal_number) {
    spdlog::info("signal {} received; stopping", signal_number);
    signalled = true;
    if (auto* agent = running.load()) agent->Stop();
  });
  auto agent = scalelab::worker::Agent::Create(options);
  if (!agent.ok()) {
    spdlog::error("cannot start: {}", agent.status().ToString());
    return EXIT_FAILURE;
  }
  running = agent->get();
  if (signalled) (*agent)->Stop();
  auto status = (*agent)->Run();
  running = nullptr;
  if (!status.ok()) {
    spdlog::error("{}", status.ToString());
    return EXIT_FAILURE;
  }
  return EXIT_SUCCESS;
}
