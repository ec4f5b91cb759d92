#include "scheduler/expand.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runspec/text.h"
#include "scheduler/search_policy.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::runspec::Capped;
using ::scalelab::runspec::Quoted;
using ::scalelab::v1::RunConfig;
using ::scalelab::v1::SweepSpec;

// init.from_run while a child is validated: any positive id stands for its parent.
constexpr int64_t kParentStandIn = 1;

std::string DescribeOverrides(const std::vector<std::pair<std::string, std::string>>& overrides) {
  if (overrides.empty()) return "base, no overrides";
  return absl::StrJoin(overrides, ", ", [](std::string* out, const auto& key_value) {
    absl::StrAppend(out, Capped(key_value.first), "=", Capped(key_value.second));
  });
}

// The runs of one grid over `base` for `kind`. With `parent`, each run takes the parent's model
// and is validated as if init.from_run named it (the store fills in the real id).
absl::StatusOr<std::vector<ExpandedRun>> ExpandGrid(const RunConfig& base,
                                                    const scalelab::v1::SweepDef& sweep,
                                                    scalelab::v1::RunKind kind,
                                                    const RunConfig* parent) {
  std::vector<const scalelab::v1::Axis*> axes;
  std::set<std::string> axis_keys;
  uint64_t total_runs = 1;
  bool overflow = false;
  std::vector<std::string> axis_sizes;
  for (const scalelab::v1::Axis& axis : sweep.grid().axes()) {
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
    run.config = base;
    run.kind = kind;
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
    if (parent != nullptr) *run.config.mutable_model() = parent->model();
    ApplyRunDefaults(&run.config, kind);
    // A child is validated with a stand-in parent id; other runs as they are, without a copy.
    RunConfig with_parent;
    if (parent != nullptr) {
      with_parent = run.config;
      with_parent.mutable_init()->set_from_run(kParentStandIn);
    }
    if (absl::Status status = ValidateRunConfig(parent != nullptr ? with_parent : run.config, kind);
        !status.ok()) {
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

}  // namespace

std::string MainStageName(const SweepSpec& spec) {
  return spec.stage().empty() ? std::string(kDefaultMainStage) : spec.stage();
}

const google::protobuf::RepeatedPtrField<scalelab::v1::SearchDimension>& SpaceDimensions(
    const scalelab::v1::SweepDef& sweep) {
  if (sweep.has_search()) return sweep.search().dimensions();
  return sweep.random().dimensions();  // the default instance's: empty for a grid
}

std::string SpacePath(const scalelab::v1::SweepDef& sweep) {
  return sweep.has_search() ? "sweep.search.space" : "sweep.random.space";
}

absl::StatusOr<ExpandedRun> BuildPointRun(const SweepSpec& spec, const SearchPoint& point,
                                          int index) {
  ExpandedRun run;
  run.index = index;
  run.config = spec.base();
  run.kind = spec.kind();
  run.stage = MainStageName(spec);
  std::vector<std::pair<std::string, std::string>> applied(point.begin(), point.end());
  for (const auto& [key, value] : point) {
    if (std::optional<FieldError> error = SetRunConfigValue(key, value, &run.config)) {
      return absl::InvalidArgumentError(absl::StrCat("run ", index, " (",
                                                     DescribeOverrides(applied), "): ", Quoted(key),
                                                     ": ", error->Message()));
    }
  }
  run.overrides = point;
  ApplyRunDefaults(&run.config, spec.kind());
  if (absl::Status status = ValidateRunConfig(run.config, spec.kind()); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("run ", index, " (", DescribeOverrides(applied), "): ", status.message()));
  }
  return run;
}

absl::StatusOr<std::vector<ExpandedRun>> DrawSearchRuns(const SweepSpec& spec,
                                                        const SearchSpace& space, int count,
                                                        SearchRng& rng, int first_index) {
  constexpr int kDrawsPerRun = 20;
  std::vector<ExpandedRun> runs;
  std::set<SearchPoint> taken;
  std::optional<absl::Status> first_problem;
  for (int64_t draw = 0;
       static_cast<int>(runs.size()) < count && draw < int64_t{kDrawsPerRun} * count; ++draw) {
    SearchPoint point = space.Sample(rng);
    if (!taken.insert(point).second) continue;
    absl::StatusOr<ExpandedRun> run =
        BuildPointRun(spec, point, first_index + static_cast<int>(runs.size()));
    if (!run.ok()) {
      if (!first_problem) first_problem = run.status();
      continue;
    }
    runs.push_back(*std::move(run));
  }
  if (static_cast<int>(runs.size()) < count) {
    return absl::InvalidArgumentError(absl::StrCat(
        SpacePath(spec.sweep()), ": expected ", count,
        " distinct points whose runs pass validation, got ", runs.size(), " in ",
        kDrawsPerRun * count, " draws",
        first_problem ? absl::StrCat("; the first that failed: ", first_problem->message()) : ""));
  }
  return runs;
}

absl::StatusOr<std::vector<ExpandedRun>> ExpandSweep(const SweepSpec& spec) {
  if (spec.sweep().has_random() || spec.sweep().has_search()) {
    absl::StatusOr<SearchSpace> space =
        SearchSpace::Create(SpaceDimensions(spec.sweep()), SpacePath(spec.sweep()));
    if (!space.ok()) return space.status();
    if (spec.sweep().has_random()) {
      const scalelab::v1::RandomSweep& random = spec.sweep().random();
      if (random.runs() < 1 || random.runs() > kMaxRunsPerSweep) {
        return absl::InvalidArgumentError(
            absl::StrCat("sweep.random.runs: expected an integer in [1, ", kMaxRunsPerSweep,
                         "], got ", random.runs()));
      }
      SearchRng rng(static_cast<uint64_t>(random.seed() == 0 ? 1 : random.seed()));
      return DrawSearchRuns(spec, *space, random.runs(), rng, 0);
    }
    scalelab::v1::SearchSweep search = spec.sweep().search();
    ApplySearchDefaults(&search);
    if (search.initial() < 1 || search.initial() > kMaxRunsPerSweep) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep.search.initial: expected an integer in [1, ", kMaxRunsPerSweep,
                       "], got ", search.initial()));
    }
    SearchRng rng = SearchRng::ForGeneration(search.seed(), 0);
    absl::StatusOr<std::vector<ExpandedRun>> runs =
        DrawSearchRuns(spec, *space, search.initial(), rng, 0);
    if (!runs.ok()) return runs;
    for (ExpandedRun& run : *runs) run.search_operator = "draft";
    return runs;
  }
  absl::StatusOr<std::vector<ExpandedRun>> runs =
      ExpandGrid(spec.base(), spec.sweep(), spec.kind(), nullptr);
  if (!runs.ok()) return runs;
  const std::string stage = MainStageName(spec);
  for (ExpandedRun& run : *runs) run.stage = stage;
  return runs;
}

absl::StatusOr<std::vector<ExpandedRun>> ExpandPipeline(const SweepSpec& spec) {
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandSweep(spec);
  if (!runs.ok()) return runs;
  const std::string main_stage = MainStageName(spec);
  // Per stage name, the indexes of its runs in `runs`.
  std::map<std::string, std::vector<int>> stage_runs;
  for (const ExpandedRun& run : *runs) stage_runs[main_stage].push_back(run.index);
  int64_t total = static_cast<int64_t>(runs->size());
  for (int stage_idx = 0; stage_idx < spec.stages_size(); ++stage_idx) {
    const scalelab::v1::StageSpec& stage = spec.stages(stage_idx);
    const std::string where = absl::StrCat("stages[", stage_idx, "] (", Capped(stage.name()), ")");
    const std::string after = stage.after().empty() ? main_stage : stage.after();
    auto parents = stage_runs.find(after);
    if (parents == stage_runs.end() || stage_runs.count(stage.name()) > 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": after: expected the main stage or an earlier stage, got ", Quoted(after)));
    }
    // Count before building: a few stages of modest grids multiply quickly.
    int64_t points = 1;
    for (const scalelab::v1::Axis& axis : stage.sweep().grid().axes()) {
      points = std::min<int64_t>(points * std::max(axis.values_size(), 1), kMaxRunsPerPipeline + 1);
    }
    total += static_cast<int64_t>(parents->second.size()) * points;
    if (total > kMaxRunsPerPipeline) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected at most ", kMaxRunsPerPipeline,
                       " runs in the whole pipeline, got more with this stage (",
                       parents->second.size(), " parents x ", points, " grid points)"));
    }
    std::vector<int>& children = stage_runs[stage.name()];
    const std::vector<int> parent_indexes = parents->second;  // stage_runs may rehash
    for (int parent_index : parent_indexes) {
      const RunConfig parent_config = (*runs)[parent_index].config;
      absl::StatusOr<std::vector<ExpandedRun>> grid =
          ExpandGrid(stage.base(), stage.sweep(), stage.kind(), &parent_config);
      if (!grid.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": parent run ", parent_index, ": ", grid.status().message()));
      }
      for (ExpandedRun& child : *grid) {
        child.index = static_cast<int>(runs->size());
        child.stage = stage.name();
        child.parent_index = parent_index;
        children.push_back(child.index);
        runs->push_back(std::move(child));
      }
    }
  }
  return runs;
}

}  // namespace scalelab::scheduler
