// The pool policy: how many worker jobs to start and which to cancel, from the scheduler's
// cluster summary and the engine's job list. Pure (no I/O, time passed in), so it is unit-tested
// without Slurm; Launcher (launcher.h) applies its decisions.
#ifndef SCALELAB_LAUNCHER_POOL_H_
#define SCALELAB_LAUNCHER_POOL_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "launcher/backend.h"
#include "scalelab/v1/cluster.pb.h"

namespace scalelab::launcher {

struct PoolOptions {
  int min_workers = 0;                              // kept even when idle
  int max_workers = 8;                              // never more jobs than this (queued ones count)
  int cpu_slots = 1;                                // runs one worker executes at once
  int gpus = 0;                                     // GPUs per worker; > 0 sizes by pending GPUs
  absl::Duration idle_timeout = absl::Seconds(30);  // idle this long with an empty queue: cancel
  absl::Status Validate() const;
};

// What to do now. Jobs in `cancel` were idle (no LEASED/RUNNING run, nothing pending) for
// idle_timeout; jobs in `lost` ended without the pool cancelling them (Slurm killed them, their
// node failed, they timed out or were preempted). A lost job whose worker held runs is replaced
// at once (within `submit`): its runs come back to the queue when their leases expire.
struct PoolDecision {
  int submit = 0;
  std::vector<std::string> cancel;
  std::vector<JobStatus> lost;
};

// Not thread-safe; one launcher loop owns it.
class PoolPlanner {
 public:
  // `worker_name` maps a job id to the name its worker registers (PoolBackend::WorkerName).
  PoolPlanner(PoolOptions options, std::function<std::string(const std::string&)> worker_name)
      : options_(options), worker_name_(std::move(worker_name)) {}

  PoolDecision Plan(const v1::ClusterSummary& summary, const std::vector<JobStatus>& jobs,
                    absl::Time now);
  // The pool submitted `job_id` (it is live from now on, even before squeue lists it).
  void Submitted(const std::string& job_id, absl::Time now);
  // Live jobs: submitted or adopted, not ended, not cancelled by the pool.
  int live_jobs() const;

 private:
  struct Job {
    absl::Time idle_since = absl::InfiniteFuture();
    bool released = false;  // cancelled by the pool: its end is expected
    int active_runs = 0;    // its worker's LEASED/RUNNING attempts in the last summary
  };
  PoolOptions options_;
  std::function<std::string(const std::string&)> worker_name_;
  std::map<std::string, Job> jobs_;  // by job id
};

}  // namespace scalelab::launcher

#endif  // SCALELAB_LAUNCHER_POOL_H_
