#include "services/analysis/solver_settings.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace scalelab::analysis {
namespace {

absl::Status CheckTolerance(const char* field, double value) {
  if (std::isfinite(value) && value >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("solver.", field, ": expected a finite number >= 0, got ", value));
}

}  // namespace

absl::Status SolverSettings::Validate() const {
  if (max_iterations < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("solver.max_iterations: expected >= 1, got ", max_iterations));
  }
  if (lbfgs_rank < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("solver.lbfgs_rank: expected >= 1, got ", lbfgs_rank));
  }
  if (auto status = CheckTolerance("function_tolerance", function_tolerance); !status.ok()) {
    return status;
  }
  if (auto status = CheckTolerance("gradient_tolerance", gradient_tolerance); !status.ok()) {
    return status;
  }
  return CheckTolerance("parameter_tolerance", parameter_tolerance);
}

}  // namespace scalelab::analysis
