// Runs one fit group's job in a child process (`scalelab-fit-group`, services/analysis/
// fit_group_io.h): the scheduler never loads Ceres and its LAPACK/glog dependencies, which crash
// the civetweb threads serving /metrics, and a fit that crashes cannot take the daemon down.
#ifndef SCALELAB_SCHEDULER_FIT_PROCESS_H_
#define SCALELAB_SCHEDULER_FIT_PROCESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "services/analysis/fit_group_io.h"

namespace scalelab::scheduler {

// The fit program: `configured` when non-empty, else `scalelab-fit-group` next to this
// executable, else the one this build put in its bin/ folder.
std::string ResolveFitProgram(const std::string& configured);

// Runs `program` on the encoded request and parses its answer. Unavailable when the program
// cannot be started, Internal when it exits non-zero or answers something unreadable (with the
// head of its stderr).
absl::StatusOr<analysis::FitGroupResult> RunFitProcess(const std::string& program,
                                                       const analysis::FitGroupRequest& request);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_FIT_PROCESS_H_
