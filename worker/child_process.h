// A child process with its stdout on a pipe and its stderr in a file. The child dies with the
// worker (PR_SET_PDEATHSIG), so a worker killed with SIGKILL leaves no trainer behind to write
// into a run that was requeued elsewhere. A child is started by fork/exec, or forked by a
// ForkServer (`scalelab-train --serve`, model/fork_server.h) that has already loaded the runtime:
// the same process per run, without the runtime's start-up.
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
class ForkServer;

class ChildProcess {
 public:
  // NotFound when argv[0] cannot be executed (the exec error is reported back by the child).
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(const ChildOptions& options);
  // The same child, forked by `server` instead: options.argv is what the server's child runs as
  // its command line. Unavailable when the server does not answer (it died: fall back to Spawn).
  // The child dies with the server and when this object closes its connection, so with the
  // worker either way.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> SpawnWith(ForkServer& server,
                                                                 const ChildOptions& options);
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
  ChildProcess(pid_t pid, int stdout_fd, int server_fd = -1)
      : pid_(pid), stdout_fd_(stdout_fd), server_fd_(server_fd) {}
  // Reads the fork server's exit report; `block` waits for it.
  void ReadServerReply(bool block);
  pid_t pid_;
  int stdout_fd_;
  int server_fd_;  // the connection to the fork server that forked it; -1 for fork/exec
  std::optional<ExitInfo> exit_;
};

// `scalelab-train --serve=SOCKET` started by this worker (a fork server). Thread-safe: each
// SpawnWith opens its own connection. The destructor stops the server (SIGTERM), which kills
// any child it still has.
class ForkServer {
 public:
  // Starts `trainer_path --serve=<socket_path>` with `env` and OPENBLAS_NUM_THREADS=1 added (its
  // children inherit them; the latter keeps the server single-threaded when it forks) and
  // waits until it accepts connections. Unavailable when it does not within `timeout_s` or
  // exits first (its stderr, in stderr_path, says why). Call it from a thread that lives as long
  // as the server: the server dies with that thread (PR_SET_PDEATHSIG).
  static absl::StatusOr<std::unique_ptr<ForkServer>> Start(
      const std::string& trainer_path, const std::string& socket_path,
      const std::string& stderr_path, std::vector<std::pair<std::string, std::string>> env,
      double timeout_s = 30);
  ~ForkServer();

  const std::string& socket_path() const { return socket_path_; }
  pid_t pid() const { return process_->pid(); }
  // Connects to the server; Unavailable when it is gone.
  absl::StatusOr<int> Connect() const;

 private:
  ForkServer(std::unique_ptr<ChildProcess> process, std::string socket_path)
      : process_(std::move(process)), socket_path_(std::move(socket_path)) {}
  std::unique_ptr<ChildProcess> process_;
  std::string socket_path_;
};

// The last `max_lines` lines of a text file ("" if unreadable). For failure messages.
std::string TailOfFile(const std::string& path, int max_lines);

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_CHILD_PROCESS_H_
