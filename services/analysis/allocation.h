// Compute-optimal allocation under a fitted Chinchilla law (chinchilla.h), with C = 6 N D:
//
//   G     = (alpha A / (beta B))^(1 / (alpha + beta))
//   N_opt = G (C/6)^(beta / (alpha + beta))
//   D_opt = (C/6)^(alpha / (alpha + beta)) / G
//
// (Hoffmann et al. 2022, eq. 4: minimising L(N, C/(6N)) over N.)
#ifndef SCALELAB_SERVICES_ANALYSIS_ALLOCATION_H_
#define SCALELAB_SERVICES_ANALYSIS_ALLOCATION_H_

#include "absl/status/statusor.h"
#include "services/analysis/bootstrap.h"
#include "services/analysis/chinchilla.h"

namespace scalelab::analysis {

// L(N, D) = E + A/N^alpha + B/D^beta in nats per token; N parameters, D tokens.
double Predict(const ChinchillaParams& params, double n_params, double tokens);

struct Allocation {
  double flops = 0;     // C, the budget
  double n_params = 0;  // N_opt
  double tokens = 0;    // D_opt = C / (6 N_opt)
  double loss = 0;      // Predict(params, N_opt, D_opt)
};

// InvalidArgument when flops is not finite and positive, or alpha or beta is not positive
// (there is no interior optimum then).
absl::StatusOr<Allocation> OptimalAllocation(const ChinchillaParams& params, double flops);

struct AllocationEstimate {
  double flops = 0;
  Estimate n_params;
  Estimate tokens;
  Estimate loss;
  Estimate tokens_per_param;  // D_opt / N_opt
};

// The allocation at `best` with percentile intervals over the bootstrap rows of
// BootstrapChinchilla; rows without an optimum (alpha or beta <= 0) are skipped and counted.
absl::StatusOr<AllocationEstimate> EstimateAllocation(const ChinchillaParams& best,
                                                      const BootstrapSamples& samples, double flops,
                                                      double confidence = 0.95);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_ALLOCATION_H_
