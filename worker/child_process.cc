#include "worker/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
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
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "runspec/fork_protocol.h"

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

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::SpawnWith(ForkServer& server,
                                                                      const ChildOptions& options) {
  if (options.argv.empty()) return absl::InvalidArgumentError("argv: expected a program, got none");
  if (options.stderr_path.empty()) {
    return absl::InvalidArgumentError("stderr_path: expected a file path, got \"\"");
  }
  absl::StatusOr<int> conn = server.Connect();
  if (!conn.ok()) return conn.status();
  const int stderr_fd =
      ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (stderr_fd < 0) {
    ::close(*conn);
    return absl::UnavailableError(
        absl::StrCat("cannot open ", options.stderr_path, ": ", std::strerror(errno)));
  }
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(stderr_fd);
    ::close(*conn);
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const std::string request =
      runspec::EncodeStartRequest({options.argv, options.env, options.working_dir});
  iovec iov{const_cast<char*>(request.data()), request.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(2 * sizeof(int));
  const int fds[2] = {out_pipe[1], stderr_fd};
  std::memcpy(CMSG_DATA(header), fds, sizeof(fds));
  const ssize_t sent = ::sendmsg(*conn, &message, MSG_NOSIGNAL);
  // The server holds its own copies now; the child's ends must not stay open here, or the
  // stdout pipe would never reach EOF.
  ::close(out_pipe[1]);
  ::close(stderr_fd);
  char reply_bytes[16];
  ssize_t got = -1;
  if (sent == static_cast<ssize_t>(request.size())) {
    do {
      got = ::recv(*conn, reply_bytes, sizeof(reply_bytes), 0);
    } while (got < 0 && errno == EINTR);
  }
  const std::optional<runspec::Reply> reply =
      got > 0 ? runspec::DecodeReply(reply_bytes, static_cast<size_t>(got)) : std::nullopt;
  if (!reply || reply->kind != runspec::ReplyKind::kStarted) {
    ::close(out_pipe[0]);
    ::close(*conn);
    return absl::UnavailableError(
        absl::StrCat("fork server ", server.socket_path(), ": ",
                     reply && reply->kind == runspec::ReplyKind::kStartFailed
                         ? absl::StrCat("fork failed: ", std::strerror(reply->value))
                         : "no answer to a start request (it ended?)"));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(reply->pid, out_pipe[0], *conn));
}

ChildProcess::~ChildProcess() {
  if (!exit_.has_value()) {
    Signal(SIGKILL);
    if (server_fd_ >= 0) {
      ReadServerReply(/*block=*/true);
    } else {
      ::waitpid(pid_, nullptr, 0);
    }
  }
  if (server_fd_ >= 0) ::close(server_fd_);
  ::close(stdout_fd_);
}

void ChildProcess::ReadServerReply(bool block) {
  char bytes[16];
  ssize_t got;
  do {
    got = ::recv(server_fd_, bytes, sizeof(bytes), block ? 0 : MSG_DONTWAIT);
  } while (got < 0 && errno == EINTR);
  if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
  const std::optional<runspec::Reply> reply =
      got > 0 ? runspec::DecodeReply(bytes, static_cast<size_t>(got)) : std::nullopt;
  if (reply && reply->kind == runspec::ReplyKind::kExited) {
    exit_ = DecodeWaitStatus(reply->value);
    return;
  }
  // The server went away without a report: its children die with it (PR_SET_PDEATHSIG).
  exit_ = ExitInfo{-1, SIGKILL};
}

void ChildProcess::Signal(int signal_number) {
  if (exit_.has_value()) return;
  ::kill(-pid_, signal_number);
}

std::optional<ExitInfo> ChildProcess::Poll() {
  if (exit_.has_value()) return exit_;
  if (server_fd_ >= 0) {
    ReadServerReply(/*block=*/false);
    return exit_;
  }
  int status = 0;
  pid_t done = ::waitpid(pid_, &status, WNOHANG);
  if (done != pid_) return std::nullopt;
  exit_ = DecodeWaitStatus(status);
  return exit_;
}

ExitInfo ChildProcess::Wait() {
  while (server_fd_ >= 0 && !exit_.has_value()) ReadServerReply(/*block=*/true);
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

absl::StatusOr<std::unique_ptr<ForkServer>> ForkServer::Start(
    const std::string& trainer_path, const std::string& socket_path, const std::string& stderr_path,
    std::vector<std::pair<std::string, std::string>> env, double timeout_s) {
  sockaddr_un address{};
  if (socket_path.empty() || socket_path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("fork server socket \"", socket_path,
                                                   "\": expected a path of 1..",
                                                   sizeof(address.sun_path) - 1, " bytes"));
  }
  ::unlink(socket_path.c_str());  // a stale socket must not pass for a ready server
  // OpenBLAS starts its thread pool when it loads, unless told to use one thread; the server must
  // be single-threaded when it forks, and the trainer cuts that pool to one thread anyway
  // (ops::ConfigureCpuThreads), so its children lose nothing.
  env.emplace_back("OPENBLAS_NUM_THREADS", "1");
  absl::StatusOr<std::unique_ptr<ChildProcess>> process = ChildProcess::Spawn(
      {{trainer_path, absl::StrCat("--serve=", socket_path)}, stderr_path, "", std::move(env)});
  if (!process.ok()) return process.status();
  std::unique_ptr<ForkServer> server(new ForkServer(*std::move(process), socket_path));
  const absl::Time deadline = absl::Now() + absl::Seconds(timeout_s);
  while (absl::Now() < deadline) {
    if (std::optional<ExitInfo> exit = server->process_->Poll()) {
      return absl::UnavailableError(absl::StrCat(
          "fork server ", trainer_path, " --serve ended at start (exit ", exit->exit_code,
          ", signal ", exit->term_signal, "): ", TailOfFile(stderr_path, 5)));
    }
    absl::StatusOr<int> probe = server->Connect();
    if (probe.ok()) {
      ::close(*probe);  // the server drops a connection that sends no request
      return server;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return absl::UnavailableError(absl::StrCat("fork server ", trainer_path,
                                             " --serve did not listen on ", socket_path, " within ",
                                             timeout_s, " s"));
}

ForkServer::~ForkServer() {
  process_->Signal(SIGTERM);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (!process_->Poll().has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  // ~ChildProcess SIGKILLs it if it is still there.
  process_.reset();
  ::unlink(socket_path_.c_str());
}

absl::StatusOr<int> ForkServer::Connect() const {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path_.c_str(), socket_path_.size());
  const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    const int error = errno;
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("fork server ", socket_path_, ": ", std::strerror(error)));
  }
  return fd;
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
