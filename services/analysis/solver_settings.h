// Stopping rules for the L-BFGS minimisations behind every fit in this library (Ceres
// GradientProblemSolver). The defaults are tight because the Huber loss with delta = 1e-3 is
// almost an L1 loss: its minimum sits in a narrow valley, and Ceres's own defaults
// (function_tolerance 1e-6) stop several units in the fourth significant figure short of it.
#ifndef SCALELAB_SERVICES_ANALYSIS_SOLVER_SETTINGS_H_
#define SCALELAB_SERVICES_ANALYSIS_SOLVER_SETTINGS_H_

#include "absl/status/status.h"

namespace scalelab::analysis {

struct SolverSettings {
  // Iterations of L-BFGS per start; an end point that runs out still competes for "best" but
  // does not count as converged.
  int max_iterations = 1000;
  // Stop when |change in objective| / objective falls below this.
  double function_tolerance = 1e-12;
  // Stop when the largest gradient component (absolute) falls below this.
  double gradient_tolerance = 1e-10;
  // Stop when |step| / (|x| + tolerance) falls below this.
  double parameter_tolerance = 1e-12;
  // Rank of the L-BFGS Hessian approximation. 10 rather than Ceres's 20: on the Chinchilla grid
  // it takes as many evaluations and ~12% less time (each direction costs O(rank)); 6 or fewer
  // take many more evaluations.
  int lbfgs_rank = 10;

  // InvalidArgument naming the field when a count is < 1 or a tolerance is negative or NaN.
  absl::Status Validate() const;
};

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_SOLVER_SETTINGS_H_
