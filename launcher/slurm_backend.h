// The Slurm backend: each worker is one batch job (`sbatch`, with `--gres=gpu:N` when workers
// have GPUs) whose script execs scalelab-worker named <prefix>-$SLURM_JOB_ID; the pool is listed
// with `squeue --states=all --name=<prefix>` and shrunk with `scancel`. Needs only the Slurm
// client tools in PATH and SLURM_CONF (or the default /etc/slurm/slurm.conf).
#ifndef SCALELAB_LAUNCHER_SLURM_BACKEND_H_
#define SCALELAB_LAUNCHER_SLURM_BACKEND_H_

#include <string>
#include <vector>

#include "launcher/backend.h"

namespace scalelab::launcher {

struct SlurmOptions {
  std::string partition;                 // "" = the cluster's default partition
  int cpus_per_worker = 0;               // --cpus-per-task; 0 = the worker's cpu_slots
  std::string log_dir = ".";             // the jobs' output files: <prefix>-<job id>.log
  std::string script_dir = ".";          // where the batch script is written
  std::vector<std::string> sbatch_args;  // extra sbatch flags (--time=..., --account=...)
  double command_timeout_s = 30;
};

// One `squeue -h -o '%i|%T'` line per job -> JobStatus. InvalidArgument names a bad line.
absl::StatusOr<std::vector<JobStatus>> ParseSqueue(const std::string& out);
// Slurm's job state (long form, "NODE_FAIL") -> phase; unknown states count as ended.
JobPhase SlurmPhase(const std::string& state);

class SlurmBackend final : public PoolBackend {
 public:
  // Writes the batch script; InvalidArgument when the template has no scheduler address.
  static absl::StatusOr<std::unique_ptr<SlurmBackend>> Create(const WorkerTemplate& worker,
                                                              const SlurmOptions& options);
  std::string Name() const override { return "slurm"; }
  absl::StatusOr<std::string> Submit() override;
  absl::StatusOr<std::vector<JobStatus>> List() override;
  absl::Status Cancel(const std::string& job_id) override;
  std::string WorkerName(const std::string& job_id) const override;
  const std::string& script_path() const { return script_path_; }

 private:
  SlurmBackend(WorkerTemplate worker, SlurmOptions options)
      : worker_(std::move(worker)), options_(std::move(options)) {}

  WorkerTemplate worker_;
  SlurmOptions options_;
  std::string script_path_;
};

}  // namespace scalelab::launcher

#endif  // SCALELAB_LAUNCHER_SLURM_BACKEND_H_
