// The launcher's loop: every poll interval, read the scheduler's cluster summary (gRPC
// ClusterService) and the engine's job list (PoolBackend), let PoolPlanner decide, submit and
// cancel jobs, and append what happened to an events file (JSON lines) for operators and tests.
// It never talks to PostgreSQL.
#ifndef SCALELAB_LAUNCHER_LAUNCHER_H_
#define SCALELAB_LAUNCHER_LAUNCHER_H_

#include <atomic>
#include <fstream>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "launcher/backend.h"
#include "launcher/pool.h"
#include "scalelab/v1/cluster.grpc.pb.h"

namespace scalelab::launcher {

struct LauncherOptions {
  std::string scheduler_address;  // where the launcher reaches the scheduler
  PoolOptions pool;
  absl::Duration poll_interval = absl::Seconds(1);
  std::string events_file;  // "" = no events file
  absl::Status Validate() const;
};

class Launcher {
 public:
  static absl::StatusOr<std::unique_ptr<Launcher>> Create(LauncherOptions options,
                                                          std::unique_ptr<PoolBackend> backend);
  // One round: read, decide, act. Errors of one call (squeue down, scheduler unreachable) are
  // returned; the next round tries again.
  absl::Status RunOnce();
  // Rounds until Stop(); the jobs are left running (a restarted launcher adopts them).
  void Run();
  // Safe from a signal handler's thread.
  void Stop() { stop_.Notify(); }

 private:
  Launcher(LauncherOptions options, std::unique_ptr<PoolBackend> backend);
  void Event(const std::string& event, const std::string& job_id, const std::string& detail);

  LauncherOptions options_;
  std::unique_ptr<PoolBackend> backend_;
  std::unique_ptr<v1::ClusterService::Stub> cluster_;
  PoolPlanner planner_;
  std::ofstream events_;
  absl::Notification stop_;
};

}  // namespace scalelab::launcher

#endif  // SCALELAB_LAUNCHER_LAUNCHER_H_
