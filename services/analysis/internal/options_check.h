// Checks shared by the Options::Validate() of the fits. Private to services/analysis.
#ifndef SCALELAB_SERVICES_ANALYSIS_INTERNAL_OPTIONS_CHECK_H_
#define SCALELAB_SERVICES_ANALYSIS_INTERNAL_OPTIONS_CHECK_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace scalelab::analysis::internal {

// InvalidArgument "<field>: expected ..." unless `grid` is non-empty and all finite.
absl::Status CheckGrid(absl::string_view field, const std::vector<double>& grid);

// InvalidArgument unless delta is finite and > 0.
absl::Status CheckDelta(absl::string_view field, double delta);

// InvalidArgument unless threads >= 0.
absl::Status CheckThreads(absl::string_view field, int threads);

}  // namespace scalelab::analysis::internal

#endif  // SCALELAB_SERVICES_ANALYSIS_INTERNAL_OPTIONS_CHECK_H_
