// scalelab-launcher: flags -> LauncherOptions and a backend, then rounds until SIGINT/SIGTERM.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "launcher/kubernetes_backend.h"
#include "launcher/launcher.h"
#include "launcher/slurm_backend.h"
#include "services/common/logging.h"
#include "services/common/signals.h"
#include "spdlog/spdlog.h"

ABSL_FLAG(std::string, scheduler, "127.0.0.1:7070", "scheduler gRPC address (the launcher's)");
ABSL_FLAG(std::string, worker_scheduler, "",
          "scheduler address as the workers' nodes reach it; empty = --scheduler");
ABSL_FLAG(std::string, backend, "slurm", "slurm | kubernetes");
ABSL_FLAG(std::string, name_prefix, "scalelab-pool",
          "job name (Slurm) / pool label (Kubernetes); workers are named <prefix>-<job id>");
ABSL_FLAG(std::string, worker_binary, "scalelab-worker", "scalelab-worker path on the nodes");
ABSL_FLAG(std::vector<std::string>, worker_args, {},
          "extra scalelab-worker flags, comma-separated (--trainer=...,--data_root=...)");
ABSL_FLAG(int, cpu_slots, 1, "runs each worker executes at once");
ABSL_FLAG(int, gpus, 0, "GPUs per worker (sbatch --gres=gpu:N, Pod nvidia.com/gpu)");
ABSL_FLAG(int, min_workers, 0, "workers kept when idle");
ABSL_FLAG(int, max_workers, 8, "most worker jobs at once, queued ones included");
ABSL_FLAG(double, idle_timeout_s, 30, "a worker idle this long with an empty queue is cancelled");
ABSL_FLAG(double, poll_interval_s, 1, "seconds between rounds");
ABSL_FLAG(std::string, state_dir, ".scalelab/launcher", "batch script and job logs (Slurm)");
ABSL_FLAG(std::string, events_file, "",
          "append one JSON line per submit/lost/release; empty = none");
ABSL_FLAG(std::string, partition, "", "Slurm partition; empty = the default one");
ABSL_FLAG(std::vector<std::string>, sbatch_args, {}, "extra sbatch flags, comma-separated");
ABSL_FLAG(std::string, image, "scalelab/scalelab:latest", "worker image (Kubernetes)");
ABSL_FLAG(std::string, k8s_namespace, "", "Kubernetes namespace; empty = kubectl's current one");
ABSL_FLAG(std::string, data_claim, "", "PersistentVolumeClaim mounted at /data; empty = emptyDir");
ABSL_FLAG(bool, dry_run, false,
          "print what one worker job would be (Pod manifest or batch script) and exit");
ABSL_FLAG(std::string, log_level, "info", "trace, debug, info, warn, error");

namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "scalelab-launcher: %s\n", std::string(status.message()).c_str());
  return EXIT_FAILURE;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace scalelab::launcher;  // NOLINT: main only
  absl::SetProgramUsageMessage(
      "ScaleLab launcher: keeps a pool of worker agents as Slurm jobs or Kubernetes Pods, sized "
      "by the scheduler's queue.");
  absl::ParseCommandLine(argc, argv);
  if (auto status = scalelab::services::InitLogging("launcher", absl::GetFlag(FLAGS_log_level));
      !status.ok()) {
    return Fail(status);
  }

  WorkerTemplate worker;
  worker.scheduler_address = absl::GetFlag(FLAGS_worker_scheduler).empty()
                                 ? absl::GetFlag(FLAGS_scheduler)
                                 : absl::GetFlag(FLAGS_worker_scheduler);
  worker.name_prefix = absl::GetFlag(FLAGS_name_prefix);
  worker.worker_binary = absl::GetFlag(FLAGS_worker_binary);
  worker.worker_args = absl::GetFlag(FLAGS_worker_args);
  worker.cpu_slots = absl::GetFlag(FLAGS_cpu_slots);
  worker.gpus = absl::GetFlag(FLAGS_gpus);

  std::unique_ptr<PoolBackend> backend;
  const std::string backend_name = absl::GetFlag(FLAGS_backend);
  if (backend_name == "slurm") {
    SlurmOptions slurm;
    slurm.partition = absl::GetFlag(FLAGS_partition);
    slurm.log_dir = absl::GetFlag(FLAGS_state_dir) + "/logs";
    slurm.script_dir = absl::GetFlag(FLAGS_state_dir);
    slurm.sbatch_args = absl::GetFlag(FLAGS_sbatch_args);
    auto created = SlurmBackend::Create(worker, slurm);
    if (!created.ok()) return Fail(created.status());
    if (absl::GetFlag(FLAGS_dry_run)) {
      std::ifstream script((*created)->script_path());
      std::printf("# %s\n%s", (*created)->script_path().c_str(),
                  std::string(std::istreambuf_iterator<char>(script), {}).c_str());
      return script ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    backend = *std::move(created);
  } else if (backend_name == "kubernetes") {
    KubernetesOptions kubernetes;
    kubernetes.image = absl::GetFlag(FLAGS_image);
    kubernetes.namespace_name = absl::GetFlag(FLAGS_k8s_namespace);
    kubernetes.data_claim = absl::GetFlag(FLAGS_data_claim);
    if (absl::GetFlag(FLAGS_dry_run)) {
      std::printf("%s", PodManifest(worker, kubernetes, "dryrun").c_str());
      return EXIT_SUCCESS;
    }
    backend = std::make_unique<KubernetesBackend>(worker, kubernetes);
  } else {
    return Fail(absl::InvalidArgumentError("--backend: expected 'slurm' or 'kubernetes', got '" +
                                           backend_name.substr(0, 100) + "'"));
  }

  LauncherOptions options;
  options.scheduler_address = absl::GetFlag(FLAGS_scheduler);
  options.pool.min_workers = absl::GetFlag(FLAGS_min_workers);
  options.pool.max_workers = absl::GetFlag(FLAGS_max_workers);
  options.pool.cpu_slots = worker.cpu_slots;
  options.pool.gpus = worker.gpus;
  options.pool.idle_timeout = absl::Seconds(absl::GetFlag(FLAGS_idle_timeout_s));
  options.poll_interval = absl::Seconds(absl::GetFlag(FLAGS_poll_interval_s));
  options.events_file = absl::GetFlag(FLAGS_events_file);
  auto launcher = Launcher::Create(options, std::move(backend));
  if (!launcher.ok()) return Fail(launcher.status());

  static Launcher* running = nullptr;
  running = launcher->get();
  scalelab::services::HandleTerminationSignals([](int signal_number) {
    spdlog::info("signal {} received; stopping (worker jobs keep running)", signal_number);
    if (running != nullptr) running->Stop();
  });
  spdlog::info("launcher: backend {}, scheduler {}, pool {} of {}..{} workers", backend_name,
               options.scheduler_address, worker.name_prefix, options.pool.min_workers,
               options.pool.max_workers);
  (*launcher)->Run();
  return EXIT_SUCCESS;
}
