// The worker agent: registers with the scheduler, heartbeats, leases runs while it has free
// slots, runs each attempt as a `scalelab-train` child process, forwards the child's metric
// lines in batches with its latest run record, and reports how each attempt ended with the
// energy it used (worker/energy.h). The trainer's final run record is always sent before the
// attempt's CompleteRun.
//
// Gangs: each lease is one rank (spec.execution: rank, world_size, rendezvous). Rank 0 reports
// as any run does; a rank > 0 only heartbeats (RunAttempt.rank) and completes with
// CompleteRunRequest.rank: its trainer prints no metrics, artifacts or evaluation results.
//
// Stopping: a run the scheduler no longer wants (cancelled, or the lease went elsewhere) gets
// SIGTERM, then SIGKILL after `stop_grace`. Agent::Stop() first tells the scheduler the worker
// is draining (WorkerService.Drain: nothing more is admitted to it), then does the same to every
// child and reports them PREEMPTED so the scheduler requeues them at once instead of waiting for
// the lease.
//
// Preemption: an attempt the heartbeat answer lists in `preempt` gets SIGTERM once; the trainer
// finishes its step, writes a checkpoint and exits runspec::kExitPreempted. After
// `preempt_grace` it gets SIGKILL. Either way the attempt is reported PREEMPTED (requeued at
// once, resumed from its newest checkpoint); one that exits 0 first is reported succeeded.
#ifndef SCALELAB_WORKER_AGENT_H_
#define SCALELAB_WORKER_AGENT_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/common/clock.h"
#include "worker/energy.h"

namespace scalelab::worker {

struct AgentOptions {
  std::string scheduler_address = "127.0.0.1:7070";  // host:port of the scheduler
  std::string name;                                  // "" = <hostname>:<pid>
  // The host other workers reach this one at: the rendezvous of a gang whose rank 0 runs here
  // (RegisterRequest.address). "" = this machine's hostname.
  std::string address;
  int cpu_slots = 1;                            // attempts run at once
  std::string trainer_path;                     // "" = scalelab-train next to this executable
  std::string data_root = ".";                  // relative data source folders resolve against it
  std::string work_dir = ".scalelab/worker";    // per-attempt folders (trainer stderr)
  int threads_per_run = 1;                      // intra-op threads given to each trainer
  std::string metrics_address = "127.0.0.1:0";  // /metrics host:port; "" = off; port 0 = any
  // How each attempt's energy is measured for CompleteRunRequest.energy (worker/energy.h: NVML,
  // RAPL shared by cpu_slots, else the power model with its watts per device).
  EnergyOptions energy;
  absl::Duration report_interval = absl::Milliseconds(500);  // metric batches at most this often
  // LeaseRuns again this long after an answer with no run; at once when a slot frees or the
  // last answer had runs (the queue is handing them out).
  absl::Duration lease_poll_interval = absl::Seconds(1);
  absl::Duration rpc_timeout = absl::Seconds(10);
  absl::Duration stop_grace = absl::Seconds(5);  // SIGTERM -> SIGKILL
  // SIGTERM -> SIGKILL for a preempted attempt: room to finish a step and write a checkpoint.
  absl::Duration preempt_grace = absl::Seconds(120);
  // Start trainers through a fork server (`scalelab-train --serve`, model/fork_server.h) that
  // Run() starts once, instead of fork/exec per run; falls back to fork/exec when it does not
  // start or stops answering. scalelab-worker turns it on (--fork_server); off here so that a
  // test's stand-in trainer script is always exec'd.
  bool fork_server = false;
  // The "disk" health check fails below this much free space under work_dir (worker/health.h).
  int64_t min_free_disk_bytes = int64_t{1} << 30;
  // Source of every time the agent decides by (heartbeat, lease poll and report schedules,
  // the lease-ttl self-fence, the SIGKILL grace, the shutdown deadline). Not owned; must
  // outlive the agent. nullptr = the real clock. Real time remains only in the loop's 100 ms
  // pacing and in RPC deadlines (gRPC measures those). With a FakeClock, a child that ignores
  // SIGTERM is killed only once the test moves the clock past stop_grace.
  services::Clock* clock = nullptr;

  absl::Status Validate() const;
};

class Agent {
 public:
  static absl::StatusOr<std::unique_ptr<Agent>> Create(AgentOptions options);
  ~Agent();

  // Runs until Stop(); returns OK after a clean stop. Transient scheduler outages are retried.
  absl::Status Run();
  // Thread-safe; Run() returns soon after.
  void Stop();
  int metrics_port() const;

 private:
  struct Impl;
  explicit Agent(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_AGENT_H_
