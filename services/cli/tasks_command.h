// `scalelab tasks sample` and `scalelab tasks suite`: the built-in problem generators and eval
// suites, printed without a scheduler. Links only scalelab_tasks (no gRPC), so it is its own
// library, scalelab_cli_tasks.
#ifndef SCALELAB_SERVICES_CLI_TASKS_COMMAND_H_
#define SCALELAB_SERVICES_CLI_TASKS_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "tasks/generators.h"

namespace scalelab::cli {

struct TasksSampleOptions {
  std::string task = "addition";  // a task family name (tasks::ParseFamily)
  std::string split = "test";     // train, held_out or test
  int64_t first = 0;              // index of the first problem of the split
  int64_t n = 5;                  // problems to print
  bool json = false;              // JSONL that tasks::LoadProblemsJsonl reads back, else a table
  // Knobs and seed; `family` is set from `task`.
  tasks::GeneratorOptions generator;
};

// Prints problems first .. first + n - 1 of the split. InvalidArgument naming the flag for an
// unknown task or split, n < 1, or bad knobs.
absl::Status RunTasksSample(const TasksSampleOptions& options, std::ostream& out);

// Loads a suite file and prints each category's item count, verifier and first item.
// The loader's errors (file:line: field: ...) unchanged.
absl::Status RunTasksSuite(const std::string& path, std::ostream& out);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_TASKS_COMMAND_H_
