#include "worker/health.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "worker/inventory.h"

namespace scalelab::worker {

std::vector<v1::HealthCheck> RunHealthChecks(const HealthOptions& options) {
  std::vector<v1::HealthCheck> checks;
  auto add = [&checks](const char* name, bool ok, std::string message) {
    v1::HealthCheck& check = checks.emplace_back();
    check.set_name(name);
    check.set_ok(ok);
    check.set_message(std::move(message));
  };
  struct statvfs disk {};
  if (::statvfs(options.work_dir.c_str(), &disk) != 0) {
    add("disk", false, absl::StrCat("cannot stat the work dir ", options.work_dir));
  } else {
    const int64_t free_bytes = static_cast<int64_t>(disk.f_bavail) * disk.f_frsize;
    add("disk", free_bytes >= options.min_free_disk_bytes,
        free_bytes >= options.min_free_disk_bytes
            ? ""
            : absl::StrCat(free_bytes, " bytes free under ", options.work_dir,
                           ", expected >= ", options.min_free_disk_bytes));
  }
  const int visible = static_cast<int>(DetectGpus(options.proc_root).size());
  add("gpu", visible >= options.registered_gpus,
      visible >= options.registered_gpus
          ? ""
          : absl::StrCat(visible, " GPUs visible, ", options.registered_gpus, " registered"));
  const bool runnable = ::access(options.trainer_path.c_str(), X_OK) == 0;
  add("trainer", runnable,
      runnable ? "" : absl::StrCat(options.trainer_path, " is missing or not executable"));
  return checks;
}

const v1::HealthCheck* FirstFailed(const std::vector<v1::HealthCheck>& checks) {
  for (const v1::HealthCheck& check : checks) {
    if (!check.ok()) return &check;
  }
  return nullptr;
}

int64_t ReadOomKills(const std::string& cgroup_root) {
  std::ifstream self("/proc/self/cgroup");
  std::string line;
  std::string path;
  while (std::getline(self, line)) {
    if (absl::StartsWith(line, "0::")) path = line.substr(3);  // the unified hierarchy
  }
  if (path.empty()) return -1;
  std::ifstream events(absl::StrCat(cgroup_root, path, "/memory.events"));
  while (std::getline(events, line)) {
    int64_t count = 0;
    if (absl::StartsWith(line, "oom_kill ") && absl::SimpleAtoi(line.substr(9), &count)) {
      return count;
    }
  }
  return -1;
}

}  // namespace scalelab::worker
