#include "services/store/embedded_postgres.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

namespace scalelab::services {
namespace {

namespace fs = std::filesystem;

constexpr char kSuperuser[] = "postgres";
constexpr char kServerOsUser[] = "postgres";
// sun_path holds the socket path plus its terminating NUL.
constexpr size_t kMaxSocketPathBytes = sizeof(sockaddr_un{}.sun_path) - 1;
// Enough of a log to show the error without flooding the Status.
constexpr size_t kOutputTailBytes = 2000;

// Who initdb and pg_ctl run as: ourselves, or (when we are root) the "postgres" user.
struct ChildUser {
  int uid = -1;  // -1 = do not switch
  int gid = -1;
};

struct CommandResult {
  int exit_code = 0;   // 128 + signal when killed by a signal
  std::string output;  // stdout and stderr, interleaved
};

std::string Tail(absl::string_view text) {
  if (text.size() <= kOutputTailBytes) return std::string(text);
  return absl::StrCat("...", text.substr(text.size() - kOutputTailBytes));
}

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) absolute = path;
  std::string normal = absolute.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  return normal;
}

// The socket folder as configured; Start() may move a default one along with a relocated cluster.
std::string EffectiveSocketDir(const EmbeddedPostgresOptions& options) {
  if (!options.socket_dir.empty()) return AbsolutePath(options.socket_dir);
  return AbsolutePath(options.data_dir) + "/socket";
}

std::string SocketPath(const std::string& socket_dir, int port) {
  return absl::StrCat(socket_dir, "/.s.PGSQL.", port);
}

// pg_ctl pastes -D and -l paths into a shell command inside double quotes, where these
// characters keep a meaning; a path holding one would run something else.
absl::Status CheckShellSafePath(absl::string_view field, const std::string& path) {
  if (path.find_first_of("\"\\$`\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("EmbeddedPostgresOptions.", field, ": \"", path,
                     "\" contains one of \" \\ $ ` or a newline, which pg_ctl cannot quote"));
  }
  return absl::OkStatus();
}

// Single-quotes `text` for /bin/sh, which pg_ctl uses to run postgres with its -o options.
std::string ShellQuote(absl::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') {
      quoted += "'\\''";
    } else {
      quoted += c;
    }
  }
  quoted += "'";
  return quoted;
}

// Percent-encodes everything but RFC 3986 unreserved characters (and '/' when asked).
std::string PercentEncode(absl::string_view text, bool keep_slash) {
  std::string encoded;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      encoded += static_cast<char>(c);
    } else {
      absl::StrAppend(&encoded, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return encoded;
}

bool IsExecutable(const fs::path& path) { return ::access(path.c_str(), X_OK) == 0; }

bool HasServerBinaries(const fs::path& dir) {
  return IsExecutable(dir / "pg_ctl") && IsExecutable(dir / "initdb");
}

absl::StatusOr<std::string> FindBinDir(const std::string& configured) {
  if (!configured.empty()) {
    if (HasServerBinaries(configured)) return AbsolutePath(configured);
    return absl::NotFoundError(absl::StrCat("EmbeddedPostgresOptions.bin_dir: \"", configured,
                                            "\" has no executable pg_ctl and initdb"));
  }
  if (const char* env = std::getenv("SCALELAB_PG_BINDIR"); env != nullptr && *env != '\0') {
    if (HasServerBinaries(env)) return AbsolutePath(env);
    return absl::NotFoundError(
        absl::StrCat("$SCALELAB_PG_BINDIR=\"", env, "\" has no executable pg_ctl and initdb"));
  }
  // Debian and Ubuntu install each major version side by side; pick the newest.
  int best_version = -1;
  std::string best_dir;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int version = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &version)) continue;
    if (version > best_version && HasServerBinaries(entry.path() / "bin")) {
      best_version = version;
      best_dir = (entry.path() / "bin").string();
    }
  }
  if (best_version >= 0) return best_dir;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      if (HasServerBinaries(std::string(dir))) return AbsolutePath(std::string(dir));
    }
  }
  return absl::NotFoundError(
      "no PostgreSQL server binaries (pg_ctl, initdb) found in $SCALELAB_PG_BINDIR, "
      "/usr/lib/postgresql/<version>/bin or $PATH; install the PostgreSQL server "
      "(apt-get install postgresql) or set EmbeddedPostgresOptions.bin_dir");
}

absl::StatusOr<ChildUser> ResolveChildUser() {
  if (::geteuid() != 0) return ChildUser{};
  struct passwd* pw = ::getpwnam(kServerOsUser);
  if (pw == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL refuses to run as root and there is no OS user \"", kServerOsUser,
        "\" to run it as; create one (useradd --system postgres) or run as a normal user"));
  }
  return ChildUser{static_cast<int>(pw->pw_uid), static_cast<int>(pw->pw_gid)};
}

// In a forked child: drops to `user` (when set). Only async-signal-safe calls.
bool SwitchUser(const ChildUser& user) {
  if (user.uid < 0) return true;
  return ::setgroups(0, nullptr) == 0 && ::setgid(static_cast<gid_t>(user.gid)) == 0 &&
         ::setuid(static_cast<uid_t>(user.uid)) == 0;
}

// In a forked child: closes every descriptor above stderr so none leaks into the server, which
// outlives us and would otherwise hold our pipes open.
void CloseInheritedFds(int max_fd) {
  if (::close_range(3, ~0U, 0) == 0) return;
  for (int fd = 3; fd < max_fd; ++fd) ::close(fd);
}

// Runs argv[0] (a full path) without a shell, as `user`, with stdin from /dev/null, and
// collects its stdout and stderr. Fails only when the process cannot be run at all.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& args,
                                         const ChildUser& user) {
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls
  // are allowed, since other threads may hold locks (malloc's) at the time of the fork.
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const int max_fd = static_cast<int>(std::min<long>(::sysconf(_SC_OPEN_MAX), 65536));

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoText(errno)));
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return absl::InternalError(absl::StrCat("fork for ", args[0], ": ", ErrnoText(err)));
  }
  if (pid == 0) {
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd < 0 || ::dup2(null_fd, 0) < 0 || ::dup2(pipe_fds[1], 1) < 0 ||
        ::dup2(pipe_fds[1], 2) < 0) {
      ::_exit(126);
    }
    CloseInheritedFds(max_fd);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // "/" so a child running as postgres never sits in a folder it cannot read.
    if (!SwitchUser(user) || ::chdir("/") != 0) {
      static constexpr char kMsg[] = "cannot switch to the postgres user\n";
      (void)!::write(2, kMsg, sizeof(kMsg) - 1);
      ::_exit(126);
    }
    ::execv(argv[0], argv.data());
    static constexpr char kMsg[] = "exec failed\n";
    (void)!::write(2, kMsg, sizeof(kMsg) - 1);
    ::_exit(127);
  }

  ::close(pipe_fds[1]);
  CommandResult result;
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(pipe_fds[0], buffer, sizeof(buffer));
    if (n > 0) {
      result.output.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(pipe_fds[0]);
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(absl::StrCat("waitpid for ", args[0], ": ", ErrnoText(errno)));
    }
  }
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.exit_code = 128 + WTERMSIG(wait_status);
  }
  return result;
}

std::string Describe(const std::vector<std::string>& args) { return absl::StrJoin(args, " "); }

// Creates `dir` (and parents) when missing and, when the server runs as another user, hands
// `dir` itself to that user. The mode keeps other local users away from a trust-auth socket.
absl::Status PrepareDir(absl::string_view field, const std::string& dir, const ChildUser& user) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "EmbeddedPostgresOptions.", field, ": cannot create \"", dir, "\": ", ec.message()));
  }
  if (::chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "EmbeddedPostgresOptions.", field, ": chmod 0700 \"", dir, "\": ", ErrnoText(errno)));
  }
  if (user.uid >= 0 &&
      ::chown(dir.c_str(), static_cast<uid_t>(user.uid), static_cast<gid_t>(user.gid)) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("EmbeddedPostgresOptions.", field,
                                                      ": chown \"", dir, "\" to ", kServerOsUser,
                                                      ": ", ErrnoText(errno)));
  }
  return absl::OkStatus();
}

// When the server runs as another user, checks in a child running as that user that it can
// reach and write `dir`, so a folder under /root fails here with a reason rather than deep
// inside initdb. Names the first folder on the way that it cannot enter.
absl::Status CheckReachable(absl::string_view field, const std::string& dir,
                            const ChildUser& user) {
  if (user.uid < 0) return absl::OkStatus();
  std::vector<std::string> prefixes;  // "/a", "/a/b", ... "/a/b/dir"
  for (size_t pos = dir.find('/', 1); pos != std::string::npos; pos = dir.find('/', pos + 1)) {
    prefixes.push_back(dir.substr(0, pos));
  }
  prefixes.push_back(dir);
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", ErrnoText(errno)));
  if (pid == 0) {
    if (!SwitchUser(user)) ::_exit(255);
    for (size_t i = 0; i < prefixes.size(); ++i) {
      int mode = i + 1 == prefixes.size() ? (W_OK | X_OK) : X_OK;
      if (::access(prefixes[i].c_str(), mode) != 0) {
        ::_exit(static_cast<int>(std::min<size_t>(i + 1, 254)));
      }
    }
    ::_exit(0);
  }
  int wait_status = 0;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  int code = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 255;
  if (code == 0) return absl::OkStatus();
  if (code == 255) return absl::InternalError("cannot switch to the postgres user");
  const std::string& blocked = prefixes[std::min<size_t>(code, prefixes.size()) - 1];
  return absl::FailedPreconditionError(absl::StrCat(
      "EmbeddedPostgresOptions.", field, ": the server runs as OS user \"", kServerOsUser,
      "\", which cannot ", blocked == dir ? "write \"" : "enter \"", blocked,
      "\"; pick a folder whose parents are all traversable (chmod o+x), e.g. under /tmp or "
      "/var/lib"));
}

// FNV-1a over 64 bits: the same value on every build and machine, unlike std::hash.
uint64_t Fnv1a64(absl::string_view text) {
  uint64_t hash = 14695981039346656037ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// Creates the relocated cluster folder, or adopts the one an earlier start created. It sits in
// a world-writable parent, so an existing entry is only adopted when it is a real folder (never
// a symlink someone planted) owned by the server's user or by root; it is opened without
// following links and fixed up through that descriptor.
absl::Status PrepareRelocatedDir(const std::string& dir, const ChildUser& user) {
  const std::string parent = fs::path(dir).parent_path().string();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "EmbeddedPostgresOptions.relocation_root: cannot create \"", parent, "\": ", ec.message()));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create the cluster folder \"", dir, "\": ", ErrnoText(errno)));
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("the cluster folder \"", dir,
                                                      "\" exists but is not a folder (",
                                                      ErrnoText(errno), "); remove it"));
  }
  struct stat st {};
  absl::Status status;
  if (::fstat(fd, &st) != 0) {
    status = absl::InternalError(absl::StrCat("fstat \"", dir, "\": ", ErrnoText(errno)));
  } else if (st.st_uid != 0 && static_cast<int>(st.st_uid) != user.uid) {
    status = absl::FailedPreconditionError(
        absl::StrCat("the cluster folder \"", dir, "\" is owned by uid ", st.st_uid,
                     ", neither root nor ", kServerOsUser, "; remove it"));
  } else if (::fchown(fd, static_cast<uid_t>(user.uid), static_cast<gid_t>(user.gid)) != 0 ||
             ::fchmod(fd, 0700) != 0) {
    status = absl::FailedPreconditionError(absl::StrCat(
        "chown/chmod the cluster folder \"", dir, "\" to ", kServerOsUser, ": ", ErrnoText(errno)));
  }
  ::close(fd);
  return status;
}

// Writes `text` to `path` (replacing it); returns false on any failure.
// O_NOFOLLOW: some of these files live in folders the postgres user owns, and root must not be
// led by a planted symlink into overwriting another file.
bool WriteTextFile(const std::string& path, absl::string_view text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  return ::close(fd) == 0 && written == text.size();
}

std::string ReadFileTail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::stringstream buffer;
  buffer << in.rdbuf();
  return Tail(buffer.str());
}

// The server writes its port (line 4) and first socket folder (line 5) into postmaster.pid.
struct RunningServer {
  int port = 0;
  std::string socket_dir;
};

absl::StatusOr<RunningServer> ReadPostmasterPid(const std::string& pgdata) {
  std::ifstream in(pgdata + "/postmaster.pid");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  RunningServer server;
  if (lines.size() < 5 || !absl::SimpleAtoi(lines[3], &server.port) || lines[4].empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "a server runs on ", pgdata, " but its postmaster.pid names no Unix socket folder"));
  }
  server.socket_dir = lines[4];
  return server;
}

}  // namespace

std::string RelocatedDataDir(std::string_view relocation_root, std::string_view data_dir) {
  const std::string absolute = AbsolutePath(std::string(data_dir));
  return absl::StrCat(AbsolutePath(std::string(relocation_root)), "/scalelab-pg-", ::geteuid(), "-",
                      absl::Hex(Fnv1a64(absolute), absl::kZeroPad16));
}

absl::Status EmbeddedPostgresOptions::Validate() const {
  if (data_dir.empty()) {
    return absl::InvalidArgumentError(
        "EmbeddedPostgresOptions.data_dir: expected a folder for the cluster, got \"\"");
  }
  if (absl::Status status = CheckShellSafePath("data_dir", data_dir); !status.ok()) return status;
  if (absl::Status status = CheckShellSafePath("socket_dir", socket_dir); !status.ok()) {
    return status;
  }
  if (port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("EmbeddedPostgresOptions.port: expected 1..65535, got ", port));
  }
  if (database.empty() || database.size() > 63 || database.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("EmbeddedPostgresOptions.database: expected a name of 1..63 bytes, got \"",
                     database, "\""));
  }
  if (timeout_s < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("EmbeddedPostgresOptions.timeout_s: expected >= 1, got ", timeout_s));
  }
  std::string socket_path = SocketPath(EffectiveSocketDir(*this), port);
  if (socket_path.size() > kMaxSocketPathBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("EmbeddedPostgresOptions.socket_dir: the socket path \"", socket_path,
                     "\" is ", socket_path.size(), " bytes; Unix sockets allow at most ",
                     kMaxSocketPathBytes, ". Set socket_dir to a shorter folder"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> EmbeddedPostgres::Start(
    const EmbeddedPostgresOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  absl::StatusOr<std::string> bin_dir = FindBinDir(options.bin_dir);
  if (!bin_dir.ok()) return bin_dir.status();
  absl::StatusOr<ChildUser> user = ResolveChildUser();
  if (!user.ok()) return user.status();

  std::unique_ptr<EmbeddedPostgres> pg(new EmbeddedPostgres());
  pg->bin_dir_ = *bin_dir;
  pg->data_dir_ = AbsolutePath(options.data_dir);
  pg->port_ = options.port;
  pg->database_ = options.database;
  pg->timeout_s_ = options.timeout_s;
  pg->child_uid_ = user->uid;
  pg->child_gid_ = user->gid;

  if (absl::Status status = PrepareDir("data_dir", pg->data_dir_, *user); !status.ok()) {
    return status;
  }
  // A cluster relocated by an earlier start stays where it is even if data_dir has become
  // reachable since (a chmod), so its data is not silently replaced by a fresh cluster.
  std::error_code ec;
  const bool relocated_before =
      user->uid >= 0 && !options.relocation_root.empty() &&
      fs::exists(pg->data_dir_ + "/CLUSTER_LOCATION", ec) &&
      fs::exists(RelocatedDataDir(options.relocation_root, pg->data_dir_) + "/pgdata/PG_VERSION",
                 ec);
  if (relocated_before) {
    if (absl::Status status = pg->Relocate(options.relocation_root); !status.ok()) return status;
  } else if (absl::Status status = CheckReachable("data_dir", pg->data_dir_, *user); !status.ok()) {
    // As root in a folder "postgres" cannot enter (a clone under /root): rather than make every
    // new user chmod their home, keep the cluster where "postgres" can reach it.
    if (status.code() != absl::StatusCode::kFailedPrecondition || user->uid < 0 ||
        options.relocation_root.empty()) {
      return status;
    }
    if (absl::Status relocated = pg->Relocate(options.relocation_root); !relocated.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          status.message(), "; moving the cluster elsewhere failed too: ", relocated.message()));
    }
  }
  pg->pgdata_ = pg->data_dir_ + "/pgdata";
  pg->socket_dir_ =
      options.socket_dir.empty() ? pg->data_dir_ + "/socket" : AbsolutePath(options.socket_dir);
  if (absl::Status status = PrepareDir("socket_dir", pg->socket_dir_, *user); !status.ok()) {
    return status;
  }
  if (absl::Status status = CheckReachable("socket_dir", pg->socket_dir_, *user); !status.ok()) {
    return status;
  }
  if (absl::Status status = pg->InitClusterIfMissing(options.durable); !status.ok()) {
    return status;
  }
  if (absl::Status status = pg->StartOrReuseServer(options.durable); !status.ok()) {
    return status;
  }
  // An error return from here on destroys `pg`, which stops a server it started.
  if (absl::Status status = pg->CreateDatabaseIfMissing(); !status.ok()) return status;
  return pg;
}

absl::Status EmbeddedPostgres::Relocate(const std::string& relocation_root) {
  const ChildUser user{child_uid_, child_gid_};
  const std::string requested = data_dir_;
  const std::string target = RelocatedDataDir(relocation_root, requested);
  if (absl::Status status = PrepareRelocatedDir(target, user); !status.ok()) return status;
  if (absl::Status status = CheckReachable("relocation_root", target, user); !status.ok()) {
    return status;
  }
  // The requested folder only keeps a note of where the cluster went; give it back to us.
  if (::chown(requested.c_str(), ::geteuid(), ::getegid()) != 0) {
    spdlog::warn("chown {} back to uid {}: {}", requested, ::geteuid(), ErrnoText(errno));
  }
  const std::string note = requested + "/CLUSTER_LOCATION";
  if (!WriteTextFile(note, target + "\n")) spdlog::warn("cannot write {}", note);
  // For whoever cleans /var/tmp: which clone this cluster belongs to.
  if (!WriteTextFile(target + "/ORIGIN", requested + "\n")) {
    spdlog::warn("cannot write {}/ORIGIN", target);
  }
  spdlog::warn(
      "OS user {} cannot reach {}, so the PostgreSQL cluster lives in {} instead (the same "
      "folder on every start from here; its path is in {})",
      kServerOsUser, requested, target, note);
  data_dir_ = target;
  relocated_ = true;
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::InitClusterIfMissing(bool durable) {
  std::error_code ec;
  if (fs::exists(pgdata_ + "/PG_VERSION", ec)) return absl::OkStatus();
  std::vector<std::string> initdb = {
      bin_dir_ + "/initdb", "--pgdata=" + pgdata_,
      "--auth=trust",       "--username=" + std::string(kSuperuser),
      "--encoding=UTF8",    "--no-locale",
  };
  if (!durable) initdb.push_back("--no-sync");
  absl::StatusOr<CommandResult> result = RunCommand(initdb, ChildUser{child_uid_, child_gid_});
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat(Describe(initdb), " exited with ", result->exit_code,
                                            ":\n", Tail(result->output)));
  }
  initialized_cluster_ = true;
  spdlog::info("initialized a PostgreSQL cluster in {}", pgdata_);
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::StartOrReuseServer(bool durable) {
  const ChildUser user{child_uid_, child_gid_};
  const std::string pg_ctl = bin_dir_ + "/pg_ctl";

  // A postmaster.pid alone may be stale (a crash); pg_ctl status checks the process.
  // Its exit code: 0 = running, 3 = not running, 4 = no usable data folder.
  std::error_code ec;
  if (fs::exists(pgdata_ + "/postmaster.pid", ec)) {
    absl::StatusOr<CommandResult> status = RunCommand({pg_ctl, "status", "-D", pgdata_}, user);
    if (!status.ok()) return status.status();
    if (status->exit_code == 0) {
      absl::StatusOr<RunningServer> running = ReadPostmasterPid(pgdata_);
      if (!running.ok()) return running.status();
      if (running->port != port_ || running->socket_dir != socket_dir_) {
        spdlog::warn("the server running on {} listens on {} port {}, not {} port {}; using it",
                     pgdata_, running->socket_dir, running->port, socket_dir_, port_);
      }
      port_ = running->port;
      socket_dir_ = running->socket_dir;
      spdlog::info("reusing the PostgreSQL server already running on {}", pgdata_);
      return absl::OkStatus();
    }
  }

  // pg_ctl hands -o to /bin/sh, hence the quoting of the one path in it.
  std::string server_options =
      absl::StrCat("-k ", ShellQuote(socket_dir_), " -c listen_addresses='' -p ", port_,
                   " -c unix_socket_permissions=0700");
  if (!durable) {
    absl::StrAppend(&server_options,
                    " -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
  }
  const std::string log_path = data_dir_ + "/postgres.log";
  std::vector<std::string> start = {
      pg_ctl,
      "start",
      "--pgdata=" + pgdata_,
      "--wait",
      "--timeout=" + std::to_string(timeout_s_),
      "--log=" + log_path,
      "--options=" + server_options,
  };
  absl::StatusOr<CommandResult> result = RunCommand(start, user);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat(Describe(start), " exited with ", result->exit_code,
                                            ":\n", Tail(result->output), "\nserver log ", log_path,
                                            ":\n", ReadFileTail(log_path)));
  }
  owned_ = true;
  running_ = true;
  spdlog::info("started PostgreSQL on {} (socket {})", pgdata_, SocketPath(socket_dir_, port_));
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::CreateDatabaseIfMissing() {
  try {
    pqxx::connection conn(ConnectionUrl("postgres"));
    pqxx::nontransaction tx(conn);  // CREATE DATABASE refuses to run in a transaction block
    if (!tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", database_).empty()) {
      return absl::OkStatus();
    }
    try {
      tx.exec(absl::StrCat("CREATE DATABASE ", tx.quote_name(database_)));
    } catch (const pqxx::sql_error& e) {
      // 42P04 duplicate_database: created by someone else since our check, which is fine.
      if (e.sqlstate() != "42P04") throw;
    }
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(
        absl::StrCat("PostgreSQL on ", pgdata_, " refused a connection: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("creating database \"", database_, "\": ", e.what()));
  }
  return absl::OkStatus();
}

EmbeddedPostgres::~EmbeddedPostgres() {
  if (!owned_ || !running_) return;
  if (absl::Status status = Stop(); !status.ok()) {
    spdlog::error("stopping PostgreSQL on {}: {}", pgdata_, status.ToString());
  }
}

absl::Status EmbeddedPostgres::Stop() {
  if (!owned_ || !running_) return absl::OkStatus();
  const ChildUser user{child_uid_, child_gid_};
  const std::string pg_ctl = bin_dir_ + "/pg_ctl";
  std::vector<std::string> stop = {
      pg_ctl, "stop", "-D", pgdata_, "-m", "fast", "-w", "-t", std::to_string(timeout_s_)};
  absl::StatusOr<CommandResult> result = RunCommand(stop, user);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    // A server that already died (crash, OOM killer, someone else's pg_ctl stop) counts as
    // stopped; anything else is an error.
    absl::StatusOr<CommandResult> status = RunCommand({pg_ctl, "status", "-D", pgdata_}, user);
    if (!status.ok() || status->exit_code == 0) {
      return absl::InternalError(absl::StrCat(Describe(stop), " exited with ", result->exit_code,
                                              ":\n", Tail(result->output)));
    }
  }
  running_ = false;
  spdlog::info("stopped PostgreSQL on {}", pgdata_);
  return absl::OkStatus();
}

std::string EmbeddedPostgres::ConnectionUrl(std::string_view database) const {
  const std::string name = database.empty() ? database_ : std::string(database);
  return absl::StrCat("postgresql:///", PercentEncode(name, /*keep_slash=*/false),
                      "?host=", PercentEncode(socket_dir_, /*keep_slash=*/false), "&port=", port_,
                      "&user=", kSuperuser);
}

}  // namespace scalelab::services
