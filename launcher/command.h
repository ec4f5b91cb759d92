// Runs a command-line tool (sbatch, squeue, scancel, kubectl) as a child process and collects
// what it printed. The launcher drives Slurm and Kubernetes only this way: no libslurm, no
// Kubernetes client library.
#ifndef SCALELAB_LAUNCHER_COMMAND_H_
#define SCALELAB_LAUNCHER_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace scalelab::launcher {

struct CommandResult {
  int exit_code = 0;  // the exit status; 128 + signal when a signal ended it
  std::string out;    // everything written to stdout
  std::string err;    // everything written to stderr
};

// Runs argv[0] (looked up in PATH) with argv[1..], `input` on its stdin, the environment of
// this process. Waits at most `timeout_s` seconds, then kills it and returns DeadlineExceeded.
// Errors: InvalidArgument (empty argv), NotFound (the program cannot be started).
// A non-zero exit is not an error here: the caller reads exit_code and err.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& input = "", double timeout_s = 60);

// "sbatch: error: ...", the first line of a failed command's stderr (or its exit code).
std::string DescribeFailure(const std::vector<std::string>& argv, const CommandResult& result);

}  // namespace scalelab::launcher

#endif  // SCALELAB_LAUNCHER_COMMAND_H_
