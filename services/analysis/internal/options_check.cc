#include "services/analysis/internal/options_check.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace scalelab::analysis::internal {

absl::Status CheckGrid(absl::string_view field, const std::vector<double>& grid) {
  if (grid.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": expected at least one starting value, got none"));
  }
  for (size_t value_idx = 0; value_idx < grid.size(); ++value_idx) {
    if (!std::isfinite(grid[value_idx])) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", value_idx, "]: expected a finite number, got ", grid[value_idx]));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckDelta(absl::string_view field, double delta) {
  if (std::isfinite(delta) && delta > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": expected a finite number > 0, got ", delta));
}

absl::Status CheckThreads(absl::string_view field, int threads) {
  if (threads >= 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": expected >= 0 (0 = all cores), got ", threads));
}

}  // namespace scalelab::analysis::internal
