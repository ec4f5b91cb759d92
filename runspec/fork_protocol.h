// The wire format between the worker and `scalelab-train --serve=SOCKET` (a fork server: a
// process that has loaded the runtime once and forks one child per run). Shared by both sides,
// so it lives in the run contract's library; header-only and dependency-free.
//
// One SOCK_SEQPACKET connection per run. The worker sends one StartRequest with two file
// descriptors attached (SCM_RIGHTS): the child's stdout and stderr. The server replies with one
// Reply of kind kStarted (pid) or kStartFailed (errno), then, when the child has ended, one of
// kind kExited (its wait status, as waitpid gives it) and closes the connection. When the worker
// closes the connection first (it ended, or dropped the run), the server SIGKILLs the child's
// process group: a trainer never outlives the worker that asked for it.
#ifndef SCALELAB_RUNSPEC_FORK_PROTOCOL_H_
#define SCALELAB_RUNSPEC_FORK_PROTOCOL_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace scalelab::runspec {

struct StartRequest {
  std::vector<std::string> argv;  // as for exec: argv[0] is the program's name
  // Set (or replaced) in the child's environment, which is otherwise the server's.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;  // "" = the server's
};

enum class ReplyKind : int32_t { kStarted = 1, kStartFailed = 2, kExited = 3 };

struct Reply {
  ReplyKind kind = ReplyKind::kStarted;
  int32_t pid = 0;
  int32_t value = 0;  // kStartFailed: errno; kExited: the wait status
};

// A request is its strings, each ended by a NUL: the argv count, the argv, the env count, each
// "name=value", then the working folder. Counts are decimal text.
inline std::string EncodeStartRequest(const StartRequest& request) {
  std::string bytes;
  auto put = [&bytes](const std::string& text) {
    bytes += text;
    bytes.push_back('\0');
  };
  put(std::to_string(request.argv.size()));
  for (const std::string& arg : request.argv) put(arg);
  put(std::to_string(request.env.size()));
  for (const auto& [name, value] : request.env) put(name + "=" + value);
  put(request.working_dir);
  return bytes;
}

// nullopt when `bytes` is not a well-formed request.
inline std::optional<StartRequest> DecodeStartRequest(const char* bytes, size_t size) {
  std::vector<std::string> fields;
  size_t begin = 0;
  for (size_t at = 0; at < size; ++at) {
    if (bytes[at] != '\0') continue;
    fields.emplace_back(bytes + begin, at - begin);
    begin = at + 1;
  }
  if (begin != size) return std::nullopt;  // an unterminated last field
  size_t next = 0;
  auto count = [&](size_t* out) {
    if (next >= fields.size() || fields[next].empty() || fields[next].size() > 6) return false;
    for (char digit : fields[next]) {
      if (digit < '0' || digit > '9') return false;
    }
    *out = std::stoul(fields[next++]);
    return true;
  };
  StartRequest request;
  size_t n_argv = 0;
  if (!count(&n_argv) || n_argv == 0 || next + n_argv > fields.size()) return std::nullopt;
  request.argv.assign(fields.begin() + next, fields.begin() + next + n_argv);
  next += n_argv;
  size_t n_env = 0;
  if (!count(&n_env) || next + n_env + 1 != fields.size()) return std::nullopt;
  for (size_t env_idx = 0; env_idx < n_env; ++env_idx) {
    const std::string& entry = fields[next++];
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) return std::nullopt;
    request.env.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
  }
  request.working_dir = fields[next];
  return request;
}

inline std::string EncodeReply(const Reply& reply) {
  std::string bytes(12, '\0');
  const int32_t words[3] = {static_cast<int32_t>(reply.kind), reply.pid, reply.value};
  std::memcpy(bytes.data(), words, sizeof(words));
  return bytes;
}

inline std::optional<Reply> DecodeReply(const char* bytes, size_t size) {
  if (size != 12) return std::nullopt;
  int32_t words[3];
  std::memcpy(words, bytes, sizeof(words));
  if (words[0] < 1 || words[0] > 3) return std::nullopt;
  return Reply{static_cast<ReplyKind>(words[0]), words[1], words[2]};
}

}  // namespace scalelab::runspec

#endif  // SCALELAB_RUNSPEC_FORK_PROTOCOL_H_
