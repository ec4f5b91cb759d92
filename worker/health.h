// The worker's own health checks, sent with every heartbeat (HeartbeatRequest.health) and used
// as evidence when an attempt fails while one of them fails (runspec::ClassifyFailure), and the
// kernel's OOM-kill counter that tells an OOM SIGKILL from any other.
#ifndef SCALELAB_WORKER_HEALTH_H_
#define SCALELAB_WORKER_HEALTH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "scalelab/v1/worker.pb.h"

namespace scalelab::worker {

struct HealthOptions {
  std::string work_dir;                     // "disk": free space of the file system holding it
  int64_t min_free_disk_bytes = 1LL << 30;  // below this, "disk" fails (default 1 GiB)
  int registered_gpus = 0;          // "gpu": the GPUs the worker registered must still be visible
  std::string proc_root = "/proc";  // where DetectGpus looks (tests point it elsewhere)
  std::string trainer_path;         // "trainer": must exist and be executable
};

// The checks "disk", "gpu" and "trainer", in that order, each with ok and, when failed, why.
std::vector<v1::HealthCheck> RunHealthChecks(const HealthOptions& options);

// The first failed check of `checks`, or nullptr.
const v1::HealthCheck* FirstFailed(const std::vector<v1::HealthCheck>& checks);

// oom_kill of this process's cgroup v2 memory.events (`cgroup_root` is where the unified
// hierarchy is mounted); -1 when it cannot be read. A trainer runs in its worker's cgroup, so
// the growth of this counter over an attempt is evidence (not proof) that the kernel's OOM
// killer sent a SIGKILL that the worker did not.
int64_t ReadOomKills(const std::string& cgroup_root = "/sys/fs/cgroup");

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_HEALTH_H_
