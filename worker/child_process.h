// A child process with its stdout on a pipe and its stderr in a file. The child dies with the
// worker (PR_SET_PDEATHSIG), so a worker killed with SIGKILL leaves no trainer behind to write
// into a run that was requeued elsewhere.
#ifndef SCALELAB_WORKER_CHILD_PROCESS_H_
#define SCALELAB_WORKER_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace scalelab::worker {

struct ChildOptions {
  std::vector<std::string> argv;  // argv[0] is the program path; required
  std::string stderr_path;        // the child's stderr goes here (truncated); required
  std::string working_dir;        // "" = the worker's
  // Variables set (or replaced) in the child's environment, which is otherwise the worker's;
  // e.g. CUDA_VISIBLE_DEVICES for the GPUs a run was placed on.
  std::vector<std::pair<std::string, std::string>> env;
};

struct ExitInfo {
  int exit_code = -1;   // -1 when killed by a signal
  int term_signal = 0;  // 0 when it exited
};

// Not thread-safe; one owner. The destructor kills the child (SIGKILL) if it still runs.
class ChildProcess {
 public:
  // NotFound when argv[0] cannot be executed (the exec error is reported back by the child).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const ChildOptions& options);
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Read end of the child's stdout; owned by this object. Reading until EOF is the caller's job.
  int stdout_fd() const { return stdout_fd_; }
  // Sends `signal_number` to the child's process group.
  void Signal(int signal_number);
  // Returns the exit once the child has ended, without blocking.
  std::optional<ExitInfo> Poll();
  // Blocks until the child has ended.
  ExitInfo Wait();

 private:
  ChildProcess(pid_t pid, int stdout_fd) : pid_(pid), stdout_fd_(stdout_fd) {}
  pid_t pid_;
  int stdout_fd_;
  std::optional<ExitInfo> exit_;
};

// The last `max_lines` lines of a text file ("" if unreadable). For failure messages.
std::string TailOfFile(const std::string& path, int max_lines);

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_CHILD_PROCESS_H_
