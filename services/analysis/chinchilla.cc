#include "services/analysis/chinchilla.h"

#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/internal/options_check.h"

namespace scalelab::analysis {

ChinchillaParams ChinchillaParams::FromVector(absl::Span<const double> values) {
  assert(values.size() == kNumParams);
  ChinchillaParams params;
  params.a = values[0];
  params.b = values[1];
  params.e = values[2];
  params.alpha = values[3];
  params.beta = values[4];
  return params;
}

std::vector<std::string> ChinchillaParamNames() { return {"a", "b", "e", "alpha", "beta"}; }

absl::Status ChinchillaOptions::Validate() const {
  if (auto status = internal::CheckDelta("chinchilla.huber_delta", huber_delta); !status.ok()) {
    return status;
  }
  const std::pair<const char*, const std::vector<double>*> grids[] = {
      {"chinchilla.a_starts", &a_starts},       {"chinchilla.b_starts", &b_starts},
      {"chinchilla.e_starts", &e_starts},       {"chinchilla.alpha_starts", &alpha_starts},
      {"chinchilla.beta_starts", &beta_starts},
  };
  for (const auto& [field, grid] : grids) {
    if (auto status = internal::CheckGrid(field, *grid); !status.ok()) return status;
  }
  if (auto status = internal::CheckThreads("chinchilla.threads", threads); !status.ok()) {
    return status;
  }
  return solver.Validate();
}

absl::StatusOr<ChinchillaEstimates> EstimateChinchilla(const ChinchillaParams& best,
                                                       const BootstrapSamples& samples,
                                                       double confidence) {
  if (samples.param_names != ChinchillaParamNames()) {
    return absl::InvalidArgumentError(
        "chinchilla estimate: samples are not of the Chinchilla law (a, b, e, alpha, beta)");
  }
  const std::vector<double> values = best.ToVector();
  ChinchillaEstimates estimates;
  Estimate* by_param[] = {&estimates.a, &estimates.b, &estimates.e, &estimates.alpha,
                          &estimates.beta};
  for (int param = 0; param < ChinchillaParams::kNumParams; ++param) {
    absl::StatusOr<Estimate> estimate = EstimateDerived(
        samples, values, [param](absl::Span<const double> row) { return row[param]; }, confidence);
    if (!estimate.ok()) return estimate.status();
    *by_param[param] = *estimate;
  }
  // exp is monotone, so these are exp of the log-space intervals; computed the same way anyway.
  Estimate* by_scale[] = {&estimates.A, &estimates.B, &estimates.E};
  for (int param = 0; param < 3; ++param) {
    absl::StatusOr<Estimate> estimate = EstimateDerived(
        samples, values, [param](absl::Span<const double> row) { return std::exp(row[param]); },
        confidence);
    if (!estimate.ok()) return estimate.status();
    *by_scale[param] = *estimate;
  }
  return estimates;
}

}  // namespace scalelab::analysis
