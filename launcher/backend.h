// What the launcher needs from a cluster engine: start one worker job, list the pool's jobs,
// cancel one. Slurm (slurm_backend.h) and Kubernetes (kubernetes_backend.h) implement it by
// running their command-line tools as child processes.
#ifndef SCALELAB_LAUNCHER_BACKEND_H_
#define SCALELAB_LAUNCHER_BACKEND_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace scalelab::launcher {

// Where a job is in its life, in the engine's terms reduced to what the pool acts on.
enum class JobPhase {
  kStarting,  // queued or being set up: no worker yet (Slurm PENDING, Pod Pending)
  kRunning,   // the worker process runs (Slurm RUNNING, Pod Running)
  kEnded,     // it stopped: completed, cancelled, failed, node lost, timed out, preempted
};

struct JobStatus {
  std::string job_id;  // Slurm job id; Pod name
  JobPhase phase = JobPhase::kStarting;
  std::string state;  // the engine's own word for it ("NODE_FAIL", "Failed", ...)
};

// What each worker of the pool runs: `scalelab-worker --scheduler=... --name=<WorkerName>`.
struct WorkerTemplate {
  std::string worker_binary = "scalelab-worker";  // path, or a name found in PATH on the node
  std::string scheduler_address;                  // host:port as the nodes reach the scheduler
  std::string name_prefix = "scalelab-pool";      // job name; workers are named <prefix>-<id>
  int cpu_slots = 1;                              // runs at once per worker (--cpu_slots)
  int gpus = 0;                                   // GPUs each worker asks the engine for
  std::vector<std::string> worker_args;           // appended to the worker's command line
};

class PoolBackend {
 public:
  virtual ~PoolBackend() = default;
  virtual std::string Name() const = 0;
  // Starts one worker job; returns its id.
  virtual absl::StatusOr<std::string> Submit() = 0;
  // The pool's jobs the engine still knows of (ended ones while it keeps them).
  virtual absl::StatusOr<std::vector<JobStatus>> List() = 0;
  // Asks the engine to stop the job (the worker gets SIGTERM and stops).
  virtual absl::Status Cancel(const std::string& job_id) = 0;
  // The name the job's worker registers with the scheduler.
  virtual std::string WorkerName(const std::string& job_id) const = 0;
};

// `value` quoted for a POSIX shell ('...' with embedded quotes escaped).
std::string ShellQuote(const std::string& value);

}  // namespace scalelab::launcher

#endif  // SCALELAB_LAUNCHER_BACKEND_H_
