#include "scheduler/expand.h"

#include <cstdint>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runspec/text.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::runspec::Capped;
using ::scalelab::runspec::Quoted;
using ::scalelab::v1::SweepSpec;

std::string DescribeOverrides(const std::vector<std::pair<std::string, std::string>>& overrides) {
  if (overrides.empty()) return "base, no overrides";
  return absl::StrJoin(overrides, ", ", [](std::string* out, const auto& key_value) {
    absl::StrAppend(out, Capped(key_value.first), "=", Capped(key_value.second));
  });
}

}  // namespace

absl::StatusOr<std::vector<ExpandedRun>> ExpandSweep(const SweepSpec& spec) {
  std::vector<const scalelab::v1::Axis*> axes;
  std::set<std::string> axis_keys;
  uint64_t total_runs = 1;
  bool overflow = false;
  std::vector<std::string> axis_sizes;
  for (const scalelab::v1::Axis& axis : spec.sweep().grid().axes()) {
    const std::string where = absl::StrCat("sweep.grid.", Quoted(axis.key()));
    if (axis.key().empty()) {
      return absl::InvalidArgumentError("sweep.grid: expected a key for every axis, got \"\"");
    }
    if (!axis_keys.insert(axis.key()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep.grid: expected each key once, got ", Quoted(axis.key()), " twice"));
    }
    if (axis.values().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected at least one value, got none"));
    }
    overflow = overflow || __builtin_mul_overflow(
                               total_runs, static_cast<uint64_t>(axis.values_size()), &total_runs);
    axis_sizes.push_back(absl::StrCat(axis.values_size()));
    axes.push_back(&axis);
  }
  if (overflow || total_runs > static_cast<uint64_t>(kMaxRunsPerSweep)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep.grid: expected at most ", kMaxRunsPerSweep, " runs, got ",
                     overflow ? "more than 2^64" : absl::StrCat(total_runs), " (",
                     absl::StrJoin(axis_sizes, " x "), ")"));
  }

  std::vector<ExpandedRun> runs;
  runs.reserve(total_runs);
  // A mixed-radix counter over the axes; the last axis is the fastest digit.
  std::vector<int> value_idx(axes.size(), 0);
  for (int run_idx = 0; run_idx < static_cast<int>(total_runs); ++run_idx) {
    ExpandedRun run;
    run.index = run_idx;
    run.config = spec.base();
    std::vector<std::pair<std::string, std::string>> applied;
    for (size_t axis_idx = 0; axis_idx < axes.size(); ++axis_idx) {
      const std::string& key = axes[axis_idx]->key();
      const std::string& value = axes[axis_idx]->values(value_idx[axis_idx]);
      if (std::optional<FieldError> error = SetRunConfigValue(key, value, &run.config)) {
        return absl::InvalidArgumentError(
            absl::StrCat("sweep.grid.", Quoted(key), ": ", error->Message()));
      }
      applied.emplace_back(key, value);
      run.overrides[key] = value;
    }
    ApplyRunDefaults(&run.config, spec.kind());
    if (absl::Status status = ValidateRunConfig(run.config, spec.kind()); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("run ", run_idx, " (", DescribeOverrides(applied), "): ", status.message()));
    }
    runs.push_back(std::move(run));
    for (int axis_idx = static_cast<int>(axes.size()) - 1; axis_idx >= 0; --axis_idx) {
      if (++value_idx[axis_idx] < axes[axis_idx]->values_size()) break;
      value_idx[axis_idx] = 0;
    }
  }
  return runs;
}

}  // namespace scalelab::scheduler
