#include "scheduler/fit_process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace scalelab::scheduler {
namespace {

namespace fs = std::filesystem;

// A temporary file removed when this goes out of scope.
struct TempFile {
  std::string path;
  int fd = -1;
  TempFile() {
    std::string pattern = (fs::temp_directory_path() / "scalelab-fit-XXXXXX").string();
    fd = mkstemp(pattern.data());
    if (fd >= 0) path = pattern;
  }
  ~TempFile() {
    if (fd >= 0) close(fd);
    if (!path.empty()) unlink(path.c_str());
  }
};

std::string ReadAll(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace

std::string ResolveFitProgram(const std::string& configured) {
  if (!configured.empty()) return configured;
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    const fs::path beside = self.parent_path() / "scalelab-fit-group";
    if (access(beside.c_str(), X_OK) == 0) return beside.string();
  }
  return SCALELAB_FIT_GROUP_PROGRAM;
}

absl::StatusOr<analysis::FitGroupResult> RunFitProcess(const std::string& program,
                                                       const analysis::FitGroupRequest& request) {
  TempFile input;
  TempFile output;
  TempFile errors;
  if (input.fd < 0 || output.fd < 0 || errors.fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("fit: cannot create temporary files: ", std::strerror(errno)));
  }
  const std::string text = analysis::EncodeFitGroupRequest(request);
  if (write(input.fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      lseek(input.fd, 0, SEEK_SET) != 0) {
    return absl::UnavailableError(
        absl::StrCat("fit: cannot write the request: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, input.fd, STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, output.fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, errors.fd, STDERR_FILENO);
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), nullptr};
  pid_t pid = 0;
  const int spawned = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    return absl::UnavailableError(
        absl::StrCat("fit: cannot start ", program, ": ", std::strerror(spawned)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("fit: waiting for ", program, ": ", std::strerror(errno)));
    }
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string stderr_text = ReadAll(errors.path).substr(0, 500);
    return absl::InternalError(absl::StrCat(
        "fit: ", program, WIFEXITED(status) ? " exited with " : " was killed by signal ",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), ": ", stderr_text));
  }
  auto result = analysis::ParseFitGroupResult(ReadAll(output.path));
  if (!result.ok()) {
    return absl::InternalError(
        absl::StrCat("fit: unreadable answer from ", program, ": ", result.status().message()));
  }
  return result;
}

}  // namespace scalelab::scheduler
