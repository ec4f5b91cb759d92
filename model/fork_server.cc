#include "model/fork_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runspec/fork_protocol.h"

namespace scalelab::model {
namespace {

constexpr size_t kMaxRequestBytes = 1 << 20;

void SendReply(int conn_fd, runspec::ReplyKind kind, pid_t pid, int value) {
  const std::string bytes = runspec::EncodeReply({kind, static_cast<int32_t>(pid), value});
  // MSG_NOSIGNAL: a worker that went away must not kill the server with SIGPIPE.
  (void)!::send(conn_fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

// Reads the one request of a new connection and its two descriptors (stdout, stderr).
std::optional<runspec::StartRequest> ReceiveRequest(int conn_fd, int* out_fd, int* err_fd) {
  std::vector<char> buffer(kMaxRequestBytes);
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t got;
  do {
    got = ::recvmsg(conn_fd, &message, MSG_CMSG_CLOEXEC);
  } while (got < 0 && errno == EINTR);
  *out_fd = -1;
  *err_fd = -1;
  for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
       header = CMSG_NXTHDR(&message, header)) {
    if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
    const size_t n_fds = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    int fds[2] = {-1, -1};
    std::memcpy(fds, CMSG_DATA(header), std::min<size_t>(n_fds, 2) * sizeof(int));
    *out_fd = fds[0];
    *err_fd = fds[1];
  }
  if (got <= 0 || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || *out_fd < 0 ||
      *err_fd < 0) {
    return std::nullopt;
  }
  return runspec::DecodeStartRequest(buffer.data(), static_cast<size_t>(got));
}

// In the forked child: becomes the run's process and never returns.
[[noreturn]] void RunChild(const runspec::StartRequest& request, int out_fd, int err_fd,
                           pid_t server, ChildMain child_main) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != server) ::_exit(127);  // the server died before prctl took effect
  ::prctl(PR_SET_NAME, "scalelab-train");   // the run's process, named as if exec'd
  ::setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGCHLD, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  const int dev_null = ::open("/dev/null", O_RDONLY);
  if (dev_null >= 0) ::dup2(dev_null, STDIN_FILENO);
  // The server's socket, its signalfd and the other runs' connections stay with the server.
  ::close_range(3, ~0U, 0);
  if (!request.working_dir.empty() && ::chdir(request.working_dir.c_str()) != 0) {
    std::fprintf(stderr, "scalelab-train: cannot enter %s: %s\n", request.working_dir.c_str(),
                 std::strerror(errno));
    ::_exit(127);
  }
  for (const auto& [name, value] : request.env) ::setenv(name.c_str(), value.c_str(), 1);
  std::vector<std::string> args = request.argv;
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int code = child_main(static_cast<int>(args.size()), argv.data());
  std::fflush(nullptr);
  ::_exit(code);
}

}  // namespace

int ServeForkRequests(const std::string& socket_path, ChildMain child_main) {
  const pid_t server = ::getpid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Told apart from its children (the runs) in ps and /proc: 15 characters at most.
  ::prctl(PR_SET_NAME, "scalelab-forksv");
  sockaddr_un address{};
  if (socket_path.empty() || socket_path.size() >= sizeof(address.sun_path)) {
    std::fprintf(stderr, "scalelab-train: --serve=%s: expected a socket path of 1..%zu bytes\n",
                 socket_path.c_str(), sizeof(address.sun_path) - 1);
    return 1;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size());
  const int listen_fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  ::unlink(socket_path.c_str());
  if (listen_fd < 0 || ::bind(listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) ||
      ::listen(listen_fd, 128) != 0) {
    std::fprintf(stderr, "scalelab-train: --serve=%s: cannot listen: %s\n", socket_path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  const int signal_fd = ::signalfd(-1, &handled, SFD_CLOEXEC);
  std::fprintf(stderr, "scalelab-train: fork server on %s (pid %d)\n", socket_path.c_str(),
               static_cast<int>(server));
  std::fflush(stderr);

  std::map<int, pid_t> child_of_conn;  // open connections and the child each asked for
  std::map<pid_t, int> conn_of_child;  // running children; -1 once their connection closed
  bool stopping = false;
  while (!stopping) {
    std::vector<pollfd> fds{{listen_fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    for (const auto& [conn_fd, pid] : child_of_conn) fds.push_back({conn_fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      while (::read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo != SIGCHLD) stopping = true;
        break;
      }
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        auto it = conn_of_child.find(pid);
        if (it == conn_of_child.end()) continue;
        if (it->second >= 0) {
          SendReply(it->second, runspec::ReplyKind::kExited, pid, status);
          ::close(it->second);
          child_of_conn.erase(it->second);
        }
        conn_of_child.erase(it);
      }
    }
    // A connection that turns readable has closed (the worker sends nothing after its request)
    // or misbehaves: either way its run must not go on.
    for (size_t fd_idx = 2; fd_idx < fds.size(); ++fd_idx) {
      if (fds[fd_idx].revents == 0) continue;
      auto it = child_of_conn.find(fds[fd_idx].fd);
      if (it == child_of_conn.end()) continue;  // already answered and closed above
      ::kill(-it->second, SIGKILL);
      conn_of_child[it->second] = -1;
      ::close(it->first);
      child_of_conn.erase(it);
    }
    if (fds[0].revents & POLLIN) {
      const int conn_fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn_fd < 0) continue;
      // A worker sends its request right after connecting; one that does not is dropped.
      timeval timeout{5, 0};
      ::setsockopt(conn_fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      int out_fd = -1;
      int err_fd = -1;
      std::optional<runspec::StartRequest> request = ReceiveRequest(conn_fd, &out_fd, &err_fd);
      if (!request) {
        if (out_fd >= 0) ::close(out_fd);
        if (err_fd >= 0) ::close(err_fd);
        ::close(conn_fd);  // a readiness probe, or a malformed request
        continue;
      }
      std::fflush(nullptr);  // nothing buffered may be written twice
      const pid_t pid = ::fork();
      if (pid == 0) RunChild(*request, out_fd, err_fd, server, child_main);
      const int fork_errno = errno;
      ::close(out_fd);
      ::close(err_fd);
      if (pid < 0) {
        SendReply(conn_fd, runspec::ReplyKind::kStartFailed, 0, fork_errno);
        ::close(conn_fd);
        continue;
      }
      ::setpgid(pid, pid);  // also here: a signal to the group may come before the child runs
      SendReply(conn_fd, runspec::ReplyKind::kStarted, pid, 0);
      child_of_conn[conn_fd] = pid;
      conn_of_child[pid] = conn_fd;
    }
  }
  for (const auto& [pid, conn_fd] : conn_of_child) ::kill(-pid, SIGKILL);
  for (const auto& [pid, conn_fd] : conn_of_child) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (conn_fd >= 0) {
      SendReply(conn_fd, runspec::ReplyKind::kExited, pid, status);
      ::close(conn_fd);
    }
  }
  ::unlink(socket_path.c_str());
  return 0;
}

}  // namespace scalelab::model
