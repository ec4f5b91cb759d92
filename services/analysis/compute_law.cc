#include "services/analysis/compute_law.h"

#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/internal/options_check.h"

namespace scalelab::analysis {
ComputeLawParams ComputeLawParams::FromVector(absl::Span<const double> values) {
  assert(values.size() == kNumParams);
  ComputeLawParams params;
  params.log_k = values[0];
  params.e = values[1];
  params.gamma = values[2];
  return params;
}

std::vector<std::string> ComputeLawParamNames() { return {"log_k", "e", "gamma"}; }

absl::Status ComputeLawOptions::Validate() const {
  if (auto status = internal::CheckDelta("compute_law.huber_delta", huber_delta); !status.ok()) {
    return status;
  }
  const std::pair<const char*, const std::vector<double>*> grids[] = {
      {"compute_law.log_k_starts", &log_k_starts},
      {"compute_law.e_starts", &e_starts},
      {"compute_law.gamma_starts", &gamma_starts},
  };
  for (const auto& [field, grid] : grids) {
    if (auto status = internal::CheckGrid(field, *grid); !status.ok()) return status;
  }
  if (auto status = internal::CheckThreads("compute_law.threads", threads); !status.ok()) {
    return status;
  }
  return solver.Validate();
}

}  // namespace scalelab::analysis
