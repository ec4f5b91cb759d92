#include "worker/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <string_view>

extern char** environ;

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace scalelab::worker {
namespace {

ExitInfo DecodeWaitStatus(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) info.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) info.term_signal = WTERMSIG(status);
  return info;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(const ChildOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("argv: expected a program, got none");
  if (options.stderr_path.empty()) {
    return absl::InvalidArgumentError("stderr_path: expected a file path, got \"\"");
  }
  int stderr_fd =
      ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (stderr_fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot open ", options.stderr_path, ": ", std::strerror(errno)));
  }
  int out_pipe[2];
  int exec_pipe[2];  // CLOEXEC: closes on a successful exec, carries errno on a failed one
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    ::close(stderr_fd);
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  std::vector<char*> argv;
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // The environment is built before fork: the child may only make async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const bool replaced = std::any_of(options.env.begin(), options.env.end(), [&](const auto& kv) {
      return text.size() > kv.first.size() && text.substr(0, kv.first.size()) == kv.first &&
             text[kv.first.size()] == '=';
    });
    if (!replaced) env_strings.emplace_back(text);
  }
  for (const auto& [name, value] : options.env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& entry : env_strings) envp.push_back(entry.data());
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(stderr_fd);
    return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here to exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);  // the worker died before prctl took effect
    ::setpgid(0, 0);
    // The worker blocks SIGINT/SIGTERM for its signal thread; the trainer must not inherit that.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(stderr_fd, STDERR_FILENO);
    int dev_null = ::open("/dev/null", O_RDONLY);
    if (dev_null >= 0) ::dup2(dev_null, STDIN_FILENO);
    if (!options.working_dir.empty() && ::chdir(options.working_dir.c_str()) != 0) {
      int err = errno;
      (void)!::write(exec_pipe[1], &err, sizeof(err));
      ::_exit(127);
    }
    ::execve(argv[0], argv.data(), envp.data());
    int err = errno;
    (void)!::write(exec_pipe[1], &err, sizeof(err));
    ::_exit(127);
  }
  ::close(stderr_fd);
  ::close(out_pipe[1]);
  ::close(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == sizeof(child_errno)) {
    ::waitpid(pid, nullptr, 0);
    ::close(out_pipe[0]);
    return absl::NotFoundError(
        absl::StrCat("cannot execute ", options.argv[0], ": ", std::strerror(child_errno)));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, out_pipe[0]));
}

ChildProcess::~ChildProcess() {
  if (!exit_.has_value()) {
    Signal(SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  ::close(stdout_fd_);
}

void ChildProcess::Signal(int signal_number) {
  if (exit_.has_value()) return;
  ::kill(-pid_, signal_number);
}

std::optional<ExitInfo> ChildProcess::Poll() {
  if (exit_.has_value()) return exit_;
  int status = 0;
  pid_t done = ::waitpid(pid_, &status, WNOHANG);
  if (done != pid_) return std::nullopt;
  exit_ = DecodeWaitStatus(status);
  return exit_;
}

ExitInfo ChildProcess::Wait() {
  while (!exit_.has_value()) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, 0);
    if (done == pid_) {
      exit_ = DecodeWaitStatus(status);
    } else if (done < 0 && errno != EINTR) {
      exit_ = ExitInfo{};  // not our child any more; nothing left to wait for
    }
  }
  return *exit_;
}

std::string TailOfFile(const std::string& path, int max_lines) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (static_cast<int>(lines.size()) > max_lines) lines.pop_front();
  }
  return absl::StrJoin(lines, "\n");
}

}  // namespace scalelab::worker
