#include "scheduler/manifest.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "runspec/run_config.h"
#include "runspec/text.h"
#include "scheduler/expand.h"
#include "scheduler/resources.h"
#include "scheduler/search_policy.h"
#include "scheduler/search_space.h"
#include "yaml-cpp/yaml.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::v1::RunConfig;
using ::scalelab::v1::SweepSpec;

constexpr absl::string_view kNameExpectation = "1 to 100 characters from [A-Za-z0-9._-]";
constexpr absl::string_view kKindExpectation = "one of pretrain, sft, grpo, eval";
constexpr int kMaxAttemptsLimit = 100;
constexpr absl::string_view kFitLawExpectation = "one of chinchilla, compute, none";
constexpr int kMaxBootstrap = 10000;

using ::scalelab::runspec::Quoted;  // caps what it echoes at 80 characters

// init.from_run while a stage's run is checked: any positive id stands for its parent.
constexpr int64_t kStageParentStandIn = 1;

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > 100) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

std::optional<scalelab::v1::RunKind> ParseRunKind(absl::string_view text) {
  if (text == "pretrain") return scalelab::v1::RUN_KIND_PRETRAIN;
  if (text == "sft") return scalelab::v1::RUN_KIND_SFT;
  if (text == "grpo") return scalelab::v1::RUN_KIND_GRPO;
  if (text == "eval") return scalelab::v1::RUN_KIND_EVAL;
  return std::nullopt;
}

std::string GridPath(absl::string_view key) { return absl::StrCat("sweep.grid.", Quoted(key)); }

std::string ElementPath(absl::string_view path, int index) {
  return absl::StrCat(path, "[", index, "]");
}

// The line of every manifest path the parser saw, so that problems found after parsing (by
// validation, on the proto) still point at what the user wrote. Paths are the ones errors show:
// "base.model.d_model", "sweep.grid.\"model.d_model\"", plus "[i]" for list elements.
class LineIndex {
 public:
  void SetRootLine(int line) { root_line_ = line; }
  void Record(const std::string& path, const YAML::Mark& mark) {
    if (!mark.is_null()) lines_.emplace(path, mark.line + 1);
  }
  // The line of `path`, else of its nearest recorded ancestor, else of the document.
  int LineOf(absl::string_view path) const {
    std::string current(path);
    while (!current.empty()) {
      if (auto it = lines_.find(current); it != lines_.end()) return it->second;
      current = Parent(current);
    }
    return root_line_;
  }

 private:
  static std::string Parent(const std::string& path) {
    size_t cut = std::string::npos;
    if (path.back() == ']') {
      cut = path.rfind('[');
    } else if (path.back() == '"' && path.size() >= 2) {
      // A quoted grid key: drop it with the dot before it.
      const size_t open = path.rfind('"', path.size() - 2);
      if (open != std::string::npos && open > 0) cut = open - 1;
    } else {
      cut = path.rfind('.');
    }
    return cut == std::string::npos ? "" : path.substr(0, cut);
  }

  std::map<std::string, int, std::less<>> lines_;
  int root_line_ = 1;
};

// Turns a problem into an InvalidArgument, prefixed with "<source>:<line>: " when validating a
// parsed manifest and bare when validating a proto.
class Reporter {
 public:
  Reporter() = default;
  Reporter(absl::string_view source, const LineIndex* lines) : source_(source), lines_(lines) {}

  // The same reporter for the paths of a part of the manifest ("stages[1]."): its lines are
  // looked up, and its messages start, with `prefix` before the path.
  Reporter Within(absl::string_view prefix) const {
    Reporter nested = *this;
    nested.prefix_ = absl::StrCat(prefix_, prefix);
    return nested;
  }

  // The same reporter with `from` spelled `to` in its paths and messages: a random or search
  // sweep's space is checked as a grid of its boundary values, reported under its own name.
  Reporter Renaming(absl::string_view from, absl::string_view to) const {
    Reporter renamed = *this;
    renamed.rename_from_ = std::string(from);
    renamed.rename_to_ = std::string(to);
    return renamed;
  }

  // `line_path` picks the line; `message` starts with the field path the user sees.
  absl::Status Fail(absl::string_view line_path, absl::string_view message) const {
    std::string full_message = absl::StrCat(prefix_, message);
    std::string full_line_path = absl::StrCat(prefix_, line_path);
    if (!rename_from_.empty()) {
      full_message = absl::StrReplaceAll(full_message, {{rename_from_, rename_to_}});
      full_line_path = absl::StrReplaceAll(full_line_path, {{rename_from_, rename_to_}});
    }
    if (lines_ == nullptr) return absl::InvalidArgumentError(full_message);
    return absl::InvalidArgumentError(
        absl::StrCat(source_, ":", lines_->LineOf(full_line_path), ": ", full_message));
  }
  // A status whose message starts with a field path ("sweep.search.budget: expected ...").
  absl::Status FailAtMessagePath(const absl::Status& status) const {
    const absl::string_view message = status.message();
    return Fail(message.substr(0, message.find(": ")), message);
  }
  absl::Status Fail(absl::string_view path, absl::string_view expected,
                    absl::string_view found) const {
    return Fail(path, path, expected, found);
  }
  absl::Status Fail(absl::string_view line_path, absl::string_view path, absl::string_view expected,
                    absl::string_view found) const {
    return Fail(line_path, absl::StrCat(path, ": expected ", expected, ", got ", found));
  }

 private:
  std::string source_;
  const LineIndex* lines_ = nullptr;
  std::string prefix_;
  std::string rename_from_;
  std::string rename_to_;
};

bool OverlapsAny(const std::string& key, const std::vector<std::string>& keys) {
  return std::any_of(keys.begin(), keys.end(),
                     [&](const std::string& other) { return KeysOverlap(key, other); });
}

// Checks each grid value of one axis on its own: it must parse for its field, appear once, and
// pass the rules that read only this axis. `others` are the other axes' keys; `point` is the base
// with every axis at its first value.
absl::Status ValidateAxisValues(const scalelab::v1::Axis& axis,
                                const std::vector<std::string>& others, const RunConfig& point,
                                scalelab::v1::RunKind kind, bool has_parent,
                                const Reporter& report) {
  const std::string where = GridPath(axis.key());
  // Two spellings of one value ("64" and "64.0", "1e6" and "1000000") are the same run, so
  // values are compared by their encoding in an otherwise empty RunConfig.
  std::set<std::string> encodings;
  for (int value_idx = 0; value_idx < axis.values_size(); ++value_idx) {
    const std::string& value = axis.values(value_idx);
    const std::string line_path = ElementPath(where, value_idx);
    RunConfig alone;
    if (std::optional<FieldError> error = SetRunConfigValue(axis.key(), value, &alone)) {
      return report.Fail(line_path, absl::StrCat(where, ": expected each value to be ",
                                                 error->expected, ", got ", error->found));
    }
    if (!encodings.insert(alone.SerializeAsString()).second) {
      return report.Fail(line_path, absl::StrCat(where, ": expected distinct values, got ",
                                                 Quoted(value), " more than once"));
    }
    RunConfig config = point;
    (void)SetRunConfigValue(axis.key(), value, &config);  // parsed above
    ApplyRunDefaults(&config, kind);
    if (has_parent) config.mutable_init()->set_from_run(kStageParentStandIn);
    for (const FieldError& error : CheckRunConfig(config, kind)) {
      const bool only_this_axis = std::all_of(
          error.involves.begin(), error.involves.end(), [&](const std::string& involved) {
            return KeysOverlap(involved, axis.key()) && !OverlapsAny(involved, others);
          });
      if (!only_this_axis) continue;
      if (error.path == axis.key()) {
        return report.Fail(line_path, absl::StrCat(where, ": expected each value to be ",
                                                   error.expected, ", got ", Quoted(value)));
      }
      return report.Fail(line_path, absl::StrCat(where, ": with the value ", Quoted(value), ", ",
                                                 error.Message()));
    }
  }
  return absl::OkStatus();
}

// An ExpandSweep error, placed at the grid. Its messages name a run ("run 3 (...): ...") or
// already start with the grid's path.
absl::Status ExpansionError(const absl::Status& status, const Reporter& report) {
  const absl::string_view message = status.message();
  if (absl::StartsWith(message, "sweep.")) return report.Fail("sweep.grid", message);
  return report.Fail("sweep.grid", absl::StrCat("sweep.grid: ", message));
}

bool IsValidKind(scalelab::v1::RunKind kind) {
  return kind != scalelab::v1::RUN_KIND_UNSPECIFIED && scalelab::v1::RunKind_IsValid(kind);
}

// The base and grid of one stage (the main one, or one of `stages` with `parent` the first run
// of its parent stage): axes, run count, the base as the first run sees it, each grid value.
// Sets `first_run` to the stage's first run (defaults applied; init.from_run unset).
absl::Status ValidateStageGrid(const RunConfig& base, const scalelab::v1::SweepDef& sweep,
                               scalelab::v1::RunKind kind, const RunConfig* parent,
                               const Reporter& report, RunConfig* first_run) {
  const bool has_grid = sweep.has_grid();
  const auto& axes = sweep.grid().axes();
  std::vector<std::string> swept;
  for (const scalelab::v1::Axis& axis : axes) swept.push_back(axis.key());

  if (has_grid && axes.empty()) {
    return report.Fail("sweep.grid", "sweep.grid", "at least one axis", "none");
  }
  std::set<std::string> seen_keys;
  for (int axis_idx = 0; axis_idx < axes.size(); ++axis_idx) {
    const scalelab::v1::Axis& axis = axes[axis_idx];
    const std::string where = GridPath(axis.key());
    KeyShape shape = KeyShape::kValue;
    if (std::optional<FieldError> error = ResolveRunConfigKey(axis.key(), &shape)) {
      return report.Fail(where, absl::StrCat(where, ": not a RunConfig key: ", error->Message()));
    }
    if (shape != KeyShape::kValue) {
      return report.Fail(where, where, "a key naming one value (such as \"model.d_model\")",
                         shape == KeyShape::kMap ? "a whole map" : "a group of fields");
    }
    if (!seen_keys.insert(axis.key()).second) {
      return report.Fail(where, "sweep.grid", "each key once", Quoted(axis.key()) + " twice");
    }
    if (axis.values().empty()) {
      return report.Fail(where, where, "a non-empty list", "an empty list");
    }
  }
  // A proto can carry far more values than a sweep may run; count before looking at each one.
  int64_t run_count = 1;
  for (const scalelab::v1::Axis& axis : axes) {
    run_count = std::min<int64_t>(run_count * axis.values_size(), int64_t{kMaxRunsPerSweep} + 1);
  }
  if (run_count > kMaxRunsPerSweep) {
    SweepSpec alone;
    *alone.mutable_base() = base;
    *alone.mutable_sweep() = sweep;
    alone.set_kind(kind);
    return ExpansionError(ExpandSweep(alone).status(), report);
  }

  // The base as its first run sees it. Rules that read a swept key are left to the per-value and
  // per-run checks below: the base value of a swept key never reaches a run.
  RunConfig first_point = base;
  for (const scalelab::v1::Axis& axis : axes) {
    (void)SetRunConfigValue(axis.key(), axis.values(0), &first_point);  // a bad one: see below
  }
  if (parent != nullptr) *first_point.mutable_model() = parent->model();
  *first_run = first_point;
  ApplyRunDefaults(first_run, kind);
  RunConfig checked = *first_run;
  if (parent != nullptr) checked.mutable_init()->set_from_run(kStageParentStandIn);
  for (const FieldError& error : CheckRunConfig(checked, kind)) {
    if (std::any_of(error.involves.begin(), error.involves.end(),
                    [&](const std::string& key) { return OverlapsAny(key, swept); })) {
      continue;
    }
    const std::string path = absl::StrCat("base.", error.path);
    return report.Fail(path, error.Message("base"));
  }

  for (int axis_idx = 0; axis_idx < axes.size(); ++axis_idx) {
    std::vector<std::string> others = swept;
    others.erase(others.begin() + axis_idx);
    if (absl::Status status = ValidateAxisValues(axes[axis_idx], others, first_point, kind,
                                                 parent != nullptr, report);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

std::string StagePath(int stage_idx) { return absl::StrCat("stages[", stage_idx, "]"); }

// The stage index an ExpandPipeline error names ("stages[2] (...): ..."), or -1.
int StageOfExpansionError(absl::string_view message) {
  int stage_idx = -1;
  if (!absl::ConsumePrefix(&message, "stages[")) return -1;
  const size_t close = message.find(']');
  if (close == absl::string_view::npos || !absl::SimpleAtoi(message.substr(0, close), &stage_idx)) {
    return -1;
  }
  return stage_idx;
}

// The pipeline stages of `spec`, after the main stage passed: names, kinds, parents, keys a stage
// may not set, attempts, then each stage's base and grid against its parent stage's first run.
absl::Status ValidateStages(const SweepSpec& spec, const RunConfig& main_first_run,
                            const Reporter& report) {
  const std::string main_stage = MainStageName(spec);
  if (!IsValidName(main_stage)) return report.Fail("stage", kNameExpectation, Quoted(main_stage));
  // Stage name -> the first run of that stage, the parent a child stage is checked against.
  std::map<std::string, RunConfig> first_runs;
  first_runs.emplace(main_stage, main_first_run);
  std::map<std::string, scalelab::v1::RunKind> stage_kinds;  // pipeline stages only
  for (int stage_idx = 0; stage_idx < spec.stages_size(); ++stage_idx) {
    const scalelab::v1::StageSpec& stage = spec.stages(stage_idx);
    const std::string path = StagePath(stage_idx);
    const Reporter in_stage = report.Within(absl::StrCat(path, "."));
    if (!IsValidName(stage.name())) {
      return in_stage.Fail("name", kNameExpectation, Quoted(stage.name()));
    }
    if (first_runs.count(stage.name()) > 0) {
      return in_stage.Fail("name",
                           "a stage name used once (the main stage is " + Quoted(main_stage) + ")",
                           Quoted(stage.name()));
    }
    if (!IsValidKind(stage.kind())) {
      return in_stage.Fail("kind", kKindExpectation,
                           stage.kind() == 0 ? "none" : absl::StrCat(stage.kind()));
    }
    const std::string after = stage.after().empty() ? main_stage : stage.after();
    auto parent = first_runs.find(after);
    if (parent == first_runs.end()) {
      std::vector<std::string> earlier = {main_stage};
      for (int earlier_idx = 0; earlier_idx < stage_idx; ++earlier_idx) {
        earlier.push_back(spec.stages(earlier_idx).name());
      }
      return in_stage.Fail("after",
                           absl::StrCat("the main stage or an earlier stage (one of ",
                                        absl::StrJoin(earlier, ", "), ")"),
                           Quoted(after));
    }
    const scalelab::v1::RunKind parent_kind =
        after == main_stage ? spec.kind() : stage_kinds.at(after);
    if (parent_kind == scalelab::v1::RUN_KIND_EVAL) {
      return in_stage.Fail("after", "a stage whose runs end with weights (not an eval stage)",
                           Quoted(after));
    }
    stage_kinds[stage.name()] = stage.kind();
    // The weights fix the model, and the pipeline fixes where they come from.
    for (absl::string_view section : {"model", "init"}) {
      const bool in_base = section == "model" ? stage.base().has_model() : stage.base().has_init();
      if (in_base) {
        return in_stage.Fail(
            absl::StrCat("base.", section),
            absl::StrCat("base.", section, ": expected no ", section, " keys in a stage (",
                         section == "model" ? "the parent's model is inherited"
                                            : "each run starts from its parent",
                         "), got some"));
      }
      for (const scalelab::v1::Axis& axis : stage.sweep().grid().axes()) {
        if (!KeysOverlap(axis.key(), std::string(section))) continue;
        const std::string where = GridPath(axis.key());
        return in_stage.Fail(
            where, absl::StrCat(where, ": expected no ", section, " keys in a stage's grid, got ",
                                Quoted(axis.key())));
      }
    }
    if (stage.max_attempts() < 0 || stage.max_attempts() > kMaxAttemptsLimit) {
      return in_stage.Fail("max_attempts",
                           absl::StrCat("an integer in [1, ", kMaxAttemptsLimit, "]"),
                           absl::StrCat(stage.max_attempts()));
    }
    RunConfig first_run;
    if (absl::Status status = ValidateStageGrid(stage.base(), stage.sweep(), stage.kind(),
                                                &parent->second, in_stage, &first_run);
        !status.ok()) {
      return status;
    }
    first_runs.emplace(stage.name(), std::move(first_run));
  }
  return absl::OkStatus();
}

// The main stage's sweep: a grid as ValidateStageGrid checks it; a random or search sweep's
// space and fields, then its space as a grid of each dimension's boundary values (a list's
// values, a range's rounded ends), so that every value a draw or an operator can produce (they
// stay within the range) passes the rules that read one field. Rules relating two fields are
// checked on each run: the drafts here (ExpandPipeline), later runs by the search loop.
absl::Status ValidateMainSweep(const SweepSpec& spec, const Reporter& report,
                               RunConfig* main_first_run) {
  const scalelab::v1::SweepDef& sweep = spec.sweep();
  if (!sweep.has_random() && !sweep.has_search()) {
    return ValidateStageGrid(spec.base(), sweep, spec.kind(), nullptr, report, main_first_run);
  }
  const std::string space_path = SpacePath(sweep);
  absl::StatusOr<SearchSpace> space = SearchSpace::Create(SpaceDimensions(sweep), space_path);
  if (!space.ok()) return report.FailAtMessagePath(space.status());
  if (sweep.has_random() &&
      (sweep.random().runs() < 1 || sweep.random().runs() > kMaxRunsPerSweep)) {
    return report.Fail("sweep.random.runs",
                       absl::StrCat("an integer in [1, ", kMaxRunsPerSweep, "]"),
                       absl::StrCat(sweep.random().runs()));
  }
  if (sweep.has_search()) {
    scalelab::v1::SearchSweep search = sweep.search();
    ApplySearchDefaults(&search);
    if (absl::Status status = ValidateSearchFields(search, "sweep.search"); !status.ok()) {
      return report.FailAtMessagePath(status);
    }
    if (spec.stages_size() > 0) {
      return report.Fail("stages", "stages",
                         "no stages in a search sweep (its runs are made as results arrive)",
                         absl::StrCat(spec.stages_size(), " stages"));
    }
  }
  scalelab::v1::SweepDef boundaries;
  for (int dimension_idx = 0; dimension_idx < static_cast<int>(space->dimensions().size());
       ++dimension_idx) {
    scalelab::v1::Axis* axis = boundaries.mutable_grid()->add_axes();
    axis->set_key(space->dimensions()[dimension_idx].key());
    for (std::string& value : space->BoundaryValues(dimension_idx)) axis->add_values(value);
  }
  return ValidateStageGrid(spec.base(), boundaries, spec.kind(), nullptr,
                           report.Renaming("sweep.grid", space_path), main_first_run);
}

// The validation behind ValidateSweepSpec and ParseManifest; see the order in manifest.h.
absl::Status ValidateSpec(const SweepSpec& spec, const Reporter& report,
                          std::vector<ExpandedRun>* expanded = nullptr) {
  if (!IsValidName(spec.name())) return report.Fail("name", kNameExpectation, Quoted(spec.name()));
  if (!IsValidName(spec.project())) {
    return report.Fail("project", kNameExpectation, Quoted(spec.project()));
  }
  if (!IsValidKind(spec.kind())) {
    return report.Fail("kind", kKindExpectation,
                       spec.kind() == 0 ? "none" : absl::StrCat(spec.kind()));
  }
  RunConfig main_first_run;
  if (absl::Status status = ValidateMainSweep(spec, report, &main_first_run); !status.ok()) {
    return status;
  }
  std::vector<std::string> swept;
  for (const scalelab::v1::Axis& axis : spec.sweep().grid().axes()) swept.push_back(axis.key());
  for (const scalelab::v1::SearchDimension& dimension : SpaceDimensions(spec.sweep())) {
    swept.push_back(dimension.key());
  }

  const scalelab::v1::FitSpec& fit = spec.fit();
  // Empty and 0 mean "the default" (ApplySweepDefaults).
  if (!fit.law().empty() && fit.law() != "chinchilla" && fit.law() != "compute" &&
      fit.law() != "none") {
    return report.Fail("fit.law", kFitLawExpectation, Quoted(fit.law()));
  }
  if (fit.bootstrap() < 0 || fit.bootstrap() > kMaxBootstrap) {
    return report.Fail("fit.bootstrap", absl::StrCat("an integer in [1, ", kMaxBootstrap, "]"),
                       absl::StrCat(fit.bootstrap()));
  }
  if (fit.confidence() != 0 && !(fit.confidence() > 0 && fit.confidence() < 1)) {
    return report.Fail("fit.confidence", "a number in (0, 1)", absl::StrCat(fit.confidence()));
  }
  for (int key_idx = 0; key_idx < fit.group_by_size(); ++key_idx) {
    const std::string& key = fit.group_by(key_idx);
    if (std::find(swept.begin(), swept.end(), key) == swept.end()) {
      const std::string expected =
          swept.empty() ? std::string("a grid key, but the sweep has no grid")
                        : absl::StrCat("one of the grid keys ", absl::StrJoin(swept, ", "));
      return report.Fail(ElementPath("fit.group_by", key_idx),
                         absl::StrCat("fit.group_by: expected ", expected, ", got ", Quoted(key)));
    }
  }
  // 0 means "use the default" (3); ParseManifest rejects an explicit 0 before it gets here.
  if (spec.max_attempts() < 0 || spec.max_attempts() > kMaxAttemptsLimit) {
    return report.Fail("max_attempts", absl::StrCat("an integer in [1, ", kMaxAttemptsLimit, "]"),
                       absl::StrCat(spec.max_attempts()));
  }
  if (!spec.priority().empty() && !PriorityClassFromName(spec.priority()).has_value()) {
    return report.Fail("priority", "one of low, normal, high, critical", Quoted(spec.priority()));
  }

  if (absl::Status status = ValidateStages(spec, main_first_run, report); !status.ok()) {
    return status;
  }

  // Every run, as ExpandPipeline builds it: the only place rules relating two swept fields (or a
  // child's field and its parent's model) can be checked.
  absl::StatusOr<std::vector<ExpandedRun>> runs = ExpandPipeline(spec);
  if (!runs.ok()) {
    const int stage_idx = StageOfExpansionError(runs.status().message());
    if (stage_idx < 0) return ExpansionError(runs.status(), report);
    return report.Fail(absl::StrCat(StagePath(stage_idx), ".sweep.grid"), runs.status().message());
  }
  if (expanded != nullptr) *expanded = *std::move(runs);
  return absl::OkStatus();
}

// Reads the YAML tree into a SweepSpec. Checks shapes (a map where a map belongs, a scalar where a
// value belongs), key names and value syntax; leaves range and cross-field rules to ValidateSpec.
// Records the line of every path it visits.
class ManifestParser {
 public:
  explicit ManifestParser(absl::string_view source) : source_(source) {}

  absl::StatusOr<SweepSpec> Parse(absl::string_view yaml_text);
  const LineIndex& lines() const { return lines_; }

 private:
  using EntryFn = std::function<absl::Status(const std::string& key, const YAML::Node& key_node,
                                             const YAML::Node& value)>;

  absl::Status ParseTopLevelEntry(const std::string& key, const YAML::Node& key_node,
                                  const YAML::Node& value, SweepSpec* spec);
  absl::Status ParseBaseMap(const YAML::Node& map, const std::string& config_path,
                            RunConfig* config);
  absl::Status ParseBaseValue(const std::string& config_path, const YAML::Node& key_node,
                              const YAML::Node& value, RunConfig* config);
  absl::Status ParseSweep(const YAML::Node& key_node, const YAML::Node& value,
                          scalelab::v1::SweepDef* sweep);
  absl::Status ParseStages(const YAML::Node& key_node, const YAML::Node& value, SweepSpec* spec);
  absl::Status ParseStage(const YAML::Node& node, scalelab::v1::StageSpec* stage);
  // Parses an attempts count ("max_attempts: 3") at `path`.
  absl::StatusOr<int> ParseMaxAttempts(const YAML::Node& key_node, const YAML::Node& value,
                                       absl::string_view path);
  absl::Status ParseGrid(const YAML::Node& key_node, const YAML::Node& value,
                         scalelab::v1::GridSweep* grid);
  absl::Status ParseRandom(const YAML::Node& key_node, const YAML::Node& value,
                           scalelab::v1::RandomSweep* random);
  absl::Status ParseSearch(const YAML::Node& key_node, const YAML::Node& value,
                           scalelab::v1::SearchSweep* search);
  // `space: {key: [values] | {low, high, log, integer, step}}` at `path`.
  absl::Status ParseSpace(const YAML::Node& key_node, const YAML::Node& value,
                          const std::string& path,
                          google::protobuf::RepeatedPtrField<scalelab::v1::SearchDimension>* out);
  absl::Status ParseOperators(const YAML::Node& key_node, const YAML::Node& value,
                              const std::string& path, scalelab::v1::SearchSweep* search);
  // Scalars of a given type at `path`.
  absl::StatusOr<int64_t> IntAt(const YAML::Node& key_node, const YAML::Node& value,
                                const std::string& path, absl::string_view expected);
  absl::StatusOr<double> NumberAt(const YAML::Node& key_node, const YAML::Node& value,
                                  const std::string& path);
  absl::StatusOr<bool> BoolAt(const YAML::Node& key_node, const YAML::Node& value,
                              const std::string& path);
  absl::Status ParseFit(const YAML::Node& key_node, const YAML::Node& value,
                        scalelab::v1::FitSpec* fit);

  // Calls `fn` for each entry of `map` (the value of `path`), in document order, after checking
  // that its key is a scalar seen once.
  absl::Status ForEachEntry(const YAML::Node& map, absl::string_view path, const EntryFn& fn);
  // The text of a scalar node; `key_node` gives the line when the value is missing.
  absl::StatusOr<std::string> ScalarText(const YAML::Node& key_node, const YAML::Node& value,
                                         absl::string_view path, absl::string_view expected);
  absl::Status RequireMap(const YAML::Node& key_node, const YAML::Node& value,
                          absl::string_view path, absl::string_view expected);

  // "<source>:<line of at>: <path>: expected <expected>, got <found>"
  absl::Status Error(const YAML::Node& at, absl::string_view path, absl::string_view expected,
                     absl::string_view found) const;
  absl::Status Error(const YAML::Node& at, absl::string_view message) const;
  static std::string Describe(const YAML::Node& node);

  std::string source_;
  LineIndex lines_;
  int root_line_ = 1;
  std::set<std::string> base_values_set_;  // RunConfig keys set so far, across both spellings
  std::string prefix_;  // "stages[i]." while a stage is parsed: it starts every path shown
};

absl::StatusOr<SweepSpec> ManifestParser::Parse(absl::string_view yaml_text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& error) {
    // The one place yaml-cpp throws; the rest of the parser only reads the tree.
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", error.mark.line + 1, ":",
                                                   error.mark.column + 1,
                                                   ": YAML syntax error: ", error.msg));
  }
  if (!root.Mark().is_null()) root_line_ = root.Mark().line + 1;
  lines_.SetRootLine(root_line_);
  if (!root.IsMap()) {
    return Error(root, "manifest", "a map with the keys name, project, kind, base, ...",
                 root.IsNull() ? "an empty document" : Describe(root));
  }
  SweepSpec spec;
  absl::Status status = ForEachEntry(
      root, "manifest",
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
        lines_.Record(key, key_node.Mark());
        return ParseTopLevelEntry(key, key_node, value, &spec);
      });
  if (!status.ok()) return status;
  return spec;
}

absl::Status ManifestParser::ParseTopLevelEntry(const std::string& key, const YAML::Node& key_node,
                                                const YAML::Node& value, SweepSpec* spec) {
  if (key == "name" || key == "project") {
    absl::StatusOr<std::string> text = ScalarText(key_node, value, key, kNameExpectation);
    if (!text.ok()) return text.status();
    key == "name" ? spec->set_name(*text) : spec->set_project(*text);
    return absl::OkStatus();
  }
  if (key == "kind") {
    absl::StatusOr<std::string> text = ScalarText(key_node, value, key, kKindExpectation);
    if (!text.ok()) return text.status();
    std::optional<scalelab::v1::RunKind> kind = ParseRunKind(*text);
    if (!kind) return Error(value, key, kKindExpectation, Quoted(*text));
    spec->set_kind(*kind);
    return absl::OkStatus();
  }
  if (key == "base") {
    if (absl::Status status = RequireMap(key_node, value, "base",
                                         "a map with the keys model, data, train, eval, resources");
        !status.ok()) {
      return status;
    }
    return ParseBaseMap(value, "", spec->mutable_base());
  }
  if (key == "sweep") return ParseSweep(key_node, value, spec->mutable_sweep());
  if (key == "stage") {
    absl::StatusOr<std::string> text = ScalarText(key_node, value, key, kNameExpectation);
    if (!text.ok()) return text.status();
    spec->set_stage(*text);
    return absl::OkStatus();
  }
  if (key == "stages") return ParseStages(key_node, value, spec);
  if (key == "fit") return ParseFit(key_node, value, spec->mutable_fit());
  if (key == "max_attempts") {
    absl::StatusOr<int> attempts = ParseMaxAttempts(key_node, value, key);
    if (!attempts.ok()) return attempts.status();
    spec->set_max_attempts(*attempts);
    return absl::OkStatus();
  }
  if (key == "priority") {
    constexpr char kPriorityExpectation[] = "one of low, normal, high, critical";
    absl::StatusOr<std::string> text = ScalarText(key_node, value, key, kPriorityExpectation);
    if (!text.ok()) return text.status();
    if (!PriorityClassFromName(*text).has_value()) {
      return Error(value, key, kPriorityExpectation, Quoted(*text));
    }
    spec->set_priority(*text);
    return absl::OkStatus();
  }
  return Error(key_node, "manifest",
               "one of the keys name, project, kind, base, sweep, fit, max_attempts, priority, "
               "stage, stages",
               Quoted(key));
}

absl::StatusOr<int> ManifestParser::ParseMaxAttempts(const YAML::Node& key_node,
                                                     const YAML::Node& value,
                                                     absl::string_view path) {
  const std::string expected = absl::StrCat("an integer in [1, ", kMaxAttemptsLimit, "]");
  absl::StatusOr<std::string> text = ScalarText(key_node, value, path, expected);
  if (!text.ok()) return text.status();
  int attempts = 0;
  // 0 would read as "unset" in the proto and silently become the default.
  if (!absl::SimpleAtoi(*text, &attempts) || attempts < 1 || attempts > kMaxAttemptsLimit) {
    return Error(value, path, expected, Quoted(*text));
  }
  return attempts;
}

absl::Status ManifestParser::ParseStages(const YAML::Node& key_node, const YAML::Node& value,
                                         SweepSpec* spec) {
  if (!value.IsSequence()) {
    return Error(value.IsNull() ? key_node : value, "stages",
                 "a list of stages, each a map with the keys name, kind, ...", Describe(value));
  }
  for (size_t stage_idx = 0; stage_idx < value.size(); ++stage_idx) {
    const YAML::Node element = value[stage_idx];
    const std::string path = ElementPath("stages", static_cast<int>(stage_idx));
    lines_.Record(path, element.Mark());
    if (!element.IsMap()) {
      return Error(element.Mark().is_null() ? key_node : element, path,
                   "a map with the keys name, kind, after, base, sweep, max_attempts",
                   Describe(element));
    }
    // A stage's paths and base keys are its own.
    prefix_ = absl::StrCat(path, ".");
    std::set<std::string> main_values_set;
    main_values_set.swap(base_values_set_);
    absl::Status status = ParseStage(element, spec->add_stages());
    base_values_set_.swap(main_values_set);
    prefix_.clear();
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status ManifestParser::ParseStage(const YAML::Node& node, scalelab::v1::StageSpec* stage) {
  const std::string stage_path = prefix_.substr(0, prefix_.size() - 1);
  return ForEachEntry(
      node, stage_path,
      [&](const std::string& key, const YAML::Node& key_node,
          const YAML::Node& value) -> absl::Status {
        const std::string path = absl::StrCat(prefix_, key);
        lines_.Record(path, key_node.Mark());
        if (key == "name" || key == "after") {
          absl::StatusOr<std::string> text = ScalarText(key_node, value, path, kNameExpectation);
          if (!text.ok()) return text.status();
          key == "name" ? stage->set_name(*text) : stage->set_after(*text);
          return absl::OkStatus();
        }
        if (key == "kind") {
          absl::StatusOr<std::string> text = ScalarText(key_node, value, path, kKindExpectation);
          if (!text.ok()) return text.status();
          std::optional<scalelab::v1::RunKind> kind = ParseRunKind(*text);
          if (!kind) return Error(value, path, kKindExpectation, Quoted(*text));
          stage->set_kind(*kind);
          return absl::OkStatus();
        }
        if (key == "base") {
          if (absl::Status status = RequireMap(key_node, value, path,
                                               "a map with keys such as sft, grpo, eval, train");
              !status.ok()) {
            return status;
          }
          return ParseBaseMap(value, "", stage->mutable_base());
        }
        if (key == "sweep") return ParseSweep(key_node, value, stage->mutable_sweep());
        if (key == "max_attempts") {
          absl::StatusOr<int> attempts = ParseMaxAttempts(key_node, value, path);
          if (!attempts.ok()) return attempts.status();
          stage->set_max_attempts(*attempts);
          return absl::OkStatus();
        }
        return Error(key_node, stage_path,
                     "one of the keys name, kind, after, base, sweep, max_attempts", Quoted(key));
      });
}

absl::Status ManifestParser::ParseBaseMap(const YAML::Node& map, const std::string& config_path,
                                          RunConfig* config) {
  const std::string base = absl::StrCat(prefix_, "base");
  return ForEachEntry(
      map, config_path.empty() ? base : absl::StrCat(base, ".", config_path),
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
        const std::string path = config_path.empty() ? key : absl::StrCat(config_path, ".", key);
        const std::string shown = absl::StrCat(base, ".", path);
        lines_.Record(shown, key_node.Mark());
        KeyShape shape = KeyShape::kValue;
        if (std::optional<FieldError> error = ResolveRunConfigKey(path, &shape)) {
          return Error(key_node, error->Message(base));
        }
        switch (shape) {
          case KeyShape::kMessage:
            if (absl::Status status = RequireMap(key_node, value, shown, "a map of fields");
                !status.ok()) {
              return status;
            }
            return ParseBaseMap(value, path, config);
          case KeyShape::kMap:
            if (absl::Status status =
                    RequireMap(key_node, value, shown, "a map of names to values");
                !status.ok()) {
              return status;
            }
            return ForEachEntry(
                value, shown,
                [&](const std::string& entry_key, const YAML::Node& entry_key_node,
                    const YAML::Node& entry_value) {
                  if (entry_key.empty()) {
                    return Error(entry_key_node, shown, "a name as each key", "\"\"");
                  }
                  const std::string entry_path = absl::StrCat(path, ".", entry_key);
                  lines_.Record(absl::StrCat(base, ".", entry_path), entry_key_node.Mark());
                  return ParseBaseValue(entry_path, entry_key_node, entry_value, config);
                });
          case KeyShape::kValue:
            return ParseBaseValue(path, key_node, value, config);
        }
        return absl::OkStatus();
      });
}

absl::Status ManifestParser::ParseBaseValue(const std::string& config_path,
                                            const YAML::Node& key_node, const YAML::Node& value,
                                            RunConfig* config) {
  const std::string base = absl::StrCat(prefix_, "base");
  const std::string shown = absl::StrCat(base, ".", config_path);
  // A list field (eval.recall_lengths: [128, 256]) travels as the comma-separated text that
  // SetRunConfigValue takes; a list given for a single-valued field fails there, by name.
  absl::StatusOr<std::string> text;
  if (value.IsSequence()) {
    std::vector<std::string> elements;
    for (const YAML::Node& element : value) {
      if (!element.IsScalar()) return Error(element, shown, "a list of values", Describe(element));
      elements.push_back(element.Scalar());
    }
    text = absl::StrJoin(elements, ",");
  } else {
    text = ScalarText(key_node, value, shown, "a single value");
  }
  if (!text.ok()) return text.status();
  // `model: {d_model: 64}` and `model.d_model: 64` name the same field; catch a manifest that
  // uses both.
  // In a stage, `model.d_model: 64` is refused as a model key: its line is that of "base.model".
  if (!prefix_.empty()) {
    for (size_t dot = config_path.find('.'); dot != std::string::npos;
         dot = config_path.find('.', dot + 1)) {
      lines_.Record(absl::StrCat(base, ".", config_path.substr(0, dot)), key_node.Mark());
    }
  }
  if (!base_values_set_.insert(config_path).second) {
    return Error(key_node, base, "each key once", Quoted(config_path) + " twice");
  }
  if (std::optional<FieldError> error = SetRunConfigValue(config_path, *text, config)) {
    return Error(value, error->Message(base));
  }
  return absl::OkStatus();
}

absl::Status ManifestParser::ParseSweep(const YAML::Node& key_node, const YAML::Node& value,
                                        scalelab::v1::SweepDef* sweep) {
  const std::string path = absl::StrCat(prefix_, "sweep");
  if (absl::Status status = RequireMap(key_node, value, path, "a map with the key grid");
      !status.ok()) {
    return status;
  }
  // Random and search sweeps make runs of the main stage only.
  const absl::string_view expected =
      prefix_.empty() ? "one of the keys grid, random, search" : "the key grid";
  if (value.size() == 0) return Error(value, path, expected, "an empty map");
  if (value.size() > 1) return Error(value, path, absl::StrCat(expected, ", once"), "several");
  return ForEachEntry(
      value, path,
      [&](const std::string& key, const YAML::Node& strategy_key_node, const YAML::Node& strategy) {
        lines_.Record(absl::StrCat(path, ".", key), strategy_key_node.Mark());
        if (key == "grid") return ParseGrid(strategy_key_node, strategy, sweep->mutable_grid());
        if (prefix_.empty() && key == "random") {
          return ParseRandom(strategy_key_node, strategy, sweep->mutable_random());
        }
        if (prefix_.empty() && key == "search") {
          return ParseSearch(strategy_key_node, strategy, sweep->mutable_search());
        }
        return Error(strategy_key_node, path, expected, Quoted(key));
      });
}

absl::StatusOr<int64_t> ManifestParser::IntAt(const YAML::Node& key_node, const YAML::Node& value,
                                              const std::string& path, absl::string_view expected) {
  absl::StatusOr<std::string> text = ScalarText(key_node, value, path, expected);
  if (!text.ok()) return text.status();
  int64_t number = 0;
  if (!absl::SimpleAtoi(*text, &number)) return Error(value, path, expected, Quoted(*text));
  return number;
}

absl::StatusOr<double> ManifestParser::NumberAt(const YAML::Node& key_node, const YAML::Node& value,
                                                const std::string& path) {
  absl::StatusOr<std::string> text = ScalarText(key_node, value, path, "a number");
  if (!text.ok()) return text.status();
  double number = 0;
  if (!absl::SimpleAtod(*text, &number) || !std::isfinite(number)) {
    return Error(value, path, "a number", Quoted(*text));
  }
  return number;
}

absl::StatusOr<bool> ManifestParser::BoolAt(const YAML::Node& key_node, const YAML::Node& value,
                                            const std::string& path) {
  absl::StatusOr<std::string> text = ScalarText(key_node, value, path, "true or false");
  if (!text.ok()) return text.status();
  if (*text == "true") return true;
  if (*text == "false") return false;
  return Error(value, path, "true or false", Quoted(*text));
}

absl::Status ManifestParser::ParseSpace(
    const YAML::Node& key_node, const YAML::Node& value, const std::string& path,
    google::protobuf::RepeatedPtrField<scalelab::v1::SearchDimension>* out) {
  if (absl::Status status = RequireMap(
          key_node, value, path,
          "a map of dotted keys to lists of values or ranges {low, high, log, integer, step}");
      !status.ok()) {
    return status;
  }
  if (value.size() == 0) return Error(value, path, "at least one dimension", "an empty map");
  return ForEachEntry(
      value, path,
      [&](const std::string& key, const YAML::Node& dim_key_node,
          const YAML::Node& dim) -> absl::Status {
        const std::string where = absl::StrCat(path, ".", Quoted(key));
        lines_.Record(where, dim_key_node.Mark());
        scalelab::v1::SearchDimension* dimension = out->Add();
        dimension->set_key(key);
        if (dim.IsSequence()) {
          if (dim.size() == 0) return Error(dim, where, "a non-empty list", "an empty list");
          for (size_t value_idx = 0; value_idx < dim.size(); ++value_idx) {
            const YAML::Node element = dim[value_idx];
            lines_.Record(ElementPath(where, static_cast<int>(value_idx)), element.Mark());
            if (!element.IsScalar()) {
              return Error(element, where, "each value to be a single value", Describe(element));
            }
            dimension->add_values(element.Scalar());
          }
          return absl::OkStatus();
        }
        if (!dim.IsMap()) {
          return Error(dim.IsNull() ? dim_key_node : dim, where,
                       "a list of values or a range {low, high, log, integer, step}",
                       Describe(dim));
        }
        bool has_low = false, has_high = false;
        if (absl::Status status = ForEachEntry(
                dim, where,
                [&](const std::string& field, const YAML::Node& field_key_node,
                    const YAML::Node& field_value) -> absl::Status {
                  const std::string field_path = absl::StrCat(where, ".", field);
                  lines_.Record(field_path, field_key_node.Mark());
                  if (field == "low" || field == "high" || field == "step") {
                    absl::StatusOr<double> number =
                        NumberAt(field_key_node, field_value, field_path);
                    if (!number.ok()) return number.status();
                    if (field == "low") {
                      // The boundary values are checked as grid values [0] (low), [1] (high).
                      lines_.Record(ElementPath(where, 0), field_key_node.Mark());
                      dimension->set_low(*number);
                      has_low = true;
                    } else if (field == "high") {
                      lines_.Record(ElementPath(where, 1), field_key_node.Mark());
                      dimension->set_high(*number);
                      has_high = true;
                    } else {
                      dimension->set_step(*number);
                    }
                    return absl::OkStatus();
                  }
                  if (field == "log" || field == "integer") {
                    absl::StatusOr<bool> flag = BoolAt(field_key_node, field_value, field_path);
                    if (!flag.ok()) return flag.status();
                    field == "log" ? dimension->set_log(*flag) : dimension->set_integer(*flag);
                    return absl::OkStatus();
                  }
                  return Error(field_key_node, where,
                               "one of the keys low, high, log, integer, step", Quoted(field));
                });
            !status.ok()) {
          return status;
        }
        if (!has_low || !has_high) {
          return Error(dim, where, "both low and high", has_low ? "no high" : "no low");
        }
        return absl::OkStatus();
      });
}

absl::Status ManifestParser::ParseRandom(const YAML::Node& key_node, const YAML::Node& value,
                                         scalelab::v1::RandomSweep* random) {
  const std::string path = "sweep.random";
  if (absl::Status status = RequireMap(key_node, value, path, "a map with keys space, runs, seed");
      !status.ok()) {
    return status;
  }
  bool has_space = false, has_runs = false;
  if (absl::Status status = ForEachEntry(
          value, path,
          [&](const std::string& key, const YAML::Node& field_key_node,
              const YAML::Node& field) -> absl::Status {
            const std::string field_path = absl::StrCat(path, ".", key);
            lines_.Record(field_path, field_key_node.Mark());
            if (key == "space") {
              has_space = true;
              return ParseSpace(field_key_node, field, field_path, random->mutable_dimensions());
            }
            if (key == "runs" || key == "seed") {
              const std::string expected =
                  key == "runs" ? absl::StrCat("an integer in [1, ", kMaxRunsPerSweep, "]")
                                : std::string("an integer");
              absl::StatusOr<int64_t> number = IntAt(field_key_node, field, field_path, expected);
              if (!number.ok()) return number.status();
              if (key == "seed") {
                random->set_seed(*number);
                return absl::OkStatus();
              }
              if (*number < 1 || *number > kMaxRunsPerSweep) {
                return Error(field, field_path, expected, absl::StrCat(*number));
              }
              has_runs = true;
              random->set_runs(static_cast<int32_t>(*number));
              return absl::OkStatus();
            }
            return Error(field_key_node, path, "one of the keys space, runs, seed", Quoted(key));
          });
      !status.ok()) {
    return status;
  }
  if (!has_space) return Error(value, path, "the key space", "none");
  if (!has_runs) return Error(value, path, "the key runs", "none");
  return absl::OkStatus();
}

absl::Status ManifestParser::ParseOperators(const YAML::Node& key_node, const YAML::Node& value,
                                            const std::string& path,
                                            scalelab::v1::SearchSweep* search) {
  if (!value.IsSequence() || value.size() == 0) {
    return Error(value.IsNull() ? key_node : value, path,
                 "a non-empty list of operators (perturb, crossover, scale, or a map "
                 "{name, factor, key})",
                 Describe(value));
  }
  for (size_t op_idx = 0; op_idx < value.size(); ++op_idx) {
    const YAML::Node element = value[op_idx];
    const std::string element_path = ElementPath(path, static_cast<int>(op_idx));
    lines_.Record(element_path, element.Mark());
    scalelab::v1::SearchOperator* op = search->add_operators();
    if (element.IsScalar()) {
      op->set_name(element.Scalar());
      continue;
    }
    if (!element.IsMap()) {
      return Error(element, element_path, "an operator name or a map {name, factor, key}",
                   Describe(element));
    }
    if (absl::Status status = ForEachEntry(
            element, element_path,
            [&](const std::string& field, const YAML::Node& field_key_node,
                const YAML::Node& field_value) -> absl::Status {
              const std::string field_path = absl::StrCat(element_path, ".", field);
              lines_.Record(field_path, field_key_node.Mark());
              if (field == "factor") {
                absl::StatusOr<double> factor = NumberAt(field_key_node, field_value, field_path);
                if (!factor.ok()) return factor.status();
                op->set_factor(*factor);
                return absl::OkStatus();
              }
              if (field == "name" || field == "key") {
                absl::StatusOr<std::string> text =
                    ScalarText(field_key_node, field_value, field_path, "a single value");
                if (!text.ok()) return text.status();
                field == "name" ? op->set_name(*text) : op->set_key(*text);
                return absl::OkStatus();
              }
              return Error(field_key_node, element_path, "one of the keys name, factor, key",
                           Quoted(field));
            });
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status ManifestParser::ParseSearch(const YAML::Node& key_node, const YAML::Node& value,
                                         scalelab::v1::SearchSweep* search) {
  const std::string path = "sweep.search";
  constexpr absl::string_view kKeys =
      "one of the keys space, policy, operators, objective, goal, budget, parallel, initial, "
      "seed, population, tournament, exploration";
  if (absl::Status status =
          RequireMap(key_node, value, path, "a map with keys such as space, policy, budget");
      !status.ok()) {
    return status;
  }
  bool has_space = false, has_budget = false, has_policy = false;
  if (absl::Status status = ForEachEntry(
          value, path,
          [&](const std::string& key, const YAML::Node& field_key_node,
              const YAML::Node& field) -> absl::Status {
            const std::string field_path = absl::StrCat(path, ".", key);
            lines_.Record(field_path, field_key_node.Mark());
            if (key == "space") {
              has_space = true;
              return ParseSpace(field_key_node, field, field_path, search->mutable_dimensions());
            }
            if (key == "operators")
              return ParseOperators(field_key_node, field, field_path, search);
            if (key == "policy" || key == "objective" || key == "goal") {
              absl::StatusOr<std::string> text =
                  ScalarText(field_key_node, field, field_path, "a single value");
              if (!text.ok()) return text.status();
              if (key == "policy") {
                has_policy = true;
                search->set_policy(*text);
              } else if (key == "objective") {
                search->set_objective(*text);
              } else {
                search->set_goal(*text);
              }
              return absl::OkStatus();
            }
            if (key == "exploration") {
              absl::StatusOr<double> number = NumberAt(field_key_node, field, field_path);
              if (!number.ok()) return number.status();
              search->set_exploration(*number);
              return absl::OkStatus();
            }
            if (key == "budget" || key == "parallel" || key == "initial" || key == "seed" ||
                key == "population" || key == "tournament") {
              const bool is_seed = key == "seed";
              const std::string expected = is_seed ? "an integer" : "a positive integer";
              absl::StatusOr<int64_t> number = IntAt(field_key_node, field, field_path, expected);
              if (!number.ok()) return number.status();
              if (is_seed) {
                search->set_seed(*number);
                return absl::OkStatus();
              }
              // Zero would read as "the default" once stored; ranges are checked after parsing.
              if (*number < 1 || *number > kMaxSearchBudget) {
                return Error(field, field_path,
                             absl::StrCat("an integer in [1, ", kMaxSearchBudget, "]"),
                             absl::StrCat(*number));
              }
              const int32_t count = static_cast<int32_t>(*number);
              if (key == "budget") {
                has_budget = true;
                search->set_budget(count);
              } else if (key == "parallel") {
                search->set_parallel(count);
              } else if (key == "initial") {
                search->set_initial(count);
              } else if (key == "population") {
                search->set_population(count);
              } else {
                search->set_tournament(count);
              }
              return absl::OkStatus();
            }
            return Error(field_key_node, path, kKeys, Quoted(key));
          });
      !status.ok()) {
    return status;
  }
  if (!has_space) return Error(value, path, "the key space", "none");
  if (!has_policy)
    return Error(value, path, "the key policy (greedy, mcts or evolutionary)", "none");
  if (!has_budget) return Error(value, path, "the key budget", "none");
  return absl::OkStatus();
}

absl::Status ManifestParser::ParseGrid(const YAML::Node& key_node, const YAML::Node& value,
                                       scalelab::v1::GridSweep* grid) {
  const std::string grid_path = absl::StrCat(prefix_, "sweep.grid");
  if (absl::Status status =
          RequireMap(key_node, value, grid_path, "a map of dotted keys to lists of values");
      !status.ok()) {
    return status;
  }
  if (value.size() == 0) return Error(value, grid_path, "at least one axis", "an empty map");
  return ForEachEntry(
      value, grid_path,
      [&](const std::string& key, const YAML::Node& axis_key_node, const YAML::Node& values) {
        const std::string where = absl::StrCat(prefix_, GridPath(key));
        lines_.Record(where, axis_key_node.Mark());
        if (!values.IsSequence()) {
          return Error(values.IsNull() ? axis_key_node : values, where, "a list of values",
                       Describe(values));
        }
        scalelab::v1::Axis* axis = grid->add_axes();
        axis->set_key(key);
        for (size_t value_idx = 0; value_idx < values.size(); ++value_idx) {
          const YAML::Node element = values[value_idx];
          const std::string element_path = ElementPath(where, static_cast<int>(value_idx));
          lines_.Record(element_path, element.Mark());
          if (!element.IsScalar()) {
            return Error(element.Mark().is_null() ? axis_key_node : element, where,
                         "each value to be a single value", Describe(element));
          }
          axis->add_values(element.Scalar());
        }
        return absl::OkStatus();
      });
}

absl::Status ManifestParser::ParseFit(const YAML::Node& key_node, const YAML::Node& value,
                                      scalelab::v1::FitSpec* fit) {
  if (absl::Status status =
          RequireMap(key_node, value, "fit", "a map with keys such as law, group_by");
      !status.ok()) {
    return status;
  }
  return ForEachEntry(
      value, "fit",
      [&](const std::string& key, const YAML::Node& field_key_node,
          const YAML::Node& field) -> absl::Status {
        const std::string path = absl::StrCat("fit.", key);
        lines_.Record(path, field_key_node.Mark());
        if (key == "law") {
          absl::StatusOr<std::string> law =
              ScalarText(field_key_node, field, path, kFitLawExpectation);
          if (!law.ok()) return law.status();
          fit->set_law(*law);
          return absl::OkStatus();
        }
        if (key == "metric") {
          absl::StatusOr<std::string> metric =
              ScalarText(field_key_node, field, path, "a metric name such as val_loss");
          if (!metric.ok()) return metric.status();
          fit->set_metric(*metric);
          return absl::OkStatus();
        }
        if (key == "bootstrap") {
          const std::string expected = absl::StrCat("an integer in [1, ", kMaxBootstrap, "]");
          absl::StatusOr<std::string> text = ScalarText(field_key_node, field, path, expected);
          if (!text.ok()) return text.status();
          int samples = 0;
          if (!absl::SimpleAtoi(*text, &samples) || samples < 1 || samples > kMaxBootstrap) {
            return Error(field, path, expected, Quoted(*text));
          }
          fit->set_bootstrap(samples);
          return absl::OkStatus();
        }
        if (key == "confidence") {
          absl::StatusOr<std::string> text =
              ScalarText(field_key_node, field, path, "a number in (0, 1)");
          if (!text.ok()) return text.status();
          double confidence = 0;
          if (!absl::SimpleAtod(*text, &confidence) || !(confidence > 0 && confidence < 1)) {
            return Error(field, path, "a number in (0, 1)", Quoted(*text));
          }
          fit->set_confidence(confidence);
          return absl::OkStatus();
        }
        if (key == "group_by") {
          if (!field.IsSequence()) {
            return Error(field.IsNull() ? field_key_node : field, path, "a list of grid keys",
                         Describe(field));
          }
          for (size_t key_idx = 0; key_idx < field.size(); ++key_idx) {
            const YAML::Node element = field[key_idx];
            lines_.Record(ElementPath(path, static_cast<int>(key_idx)), element.Mark());
            if (!element.IsScalar()) {
              return Error(element, path, "each entry to be a grid key", Describe(element));
            }
            fit->add_group_by(element.Scalar());
          }
          return absl::OkStatus();
        }
        return Error(field_key_node, "fit",
                     "one of the keys law, group_by, metric, bootstrap, confidence", Quoted(key));
      });
}

absl::Status ManifestParser::ForEachEntry(const YAML::Node& map, absl::string_view path,
                                          const EntryFn& fn) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key_node = it->first;
    if (!key_node.IsScalar()) {
      return Error(key_node, path, "a name as each key", Describe(key_node));
    }
    const std::string& key = key_node.Scalar();
    if (!seen.insert(key).second) {
      return Error(key_node, path, "each key once", Quoted(key) + " twice");
    }
    if (absl::Status status = fn(key, key_node, it->second); !status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ManifestParser::ScalarText(const YAML::Node& key_node,
                                                       const YAML::Node& value,
                                                       absl::string_view path,
                                                       absl::string_view expected) {
  if (value.IsScalar()) return value.Scalar();
  return Error(value.IsNull() ? key_node : value, path, expected, Describe(value));
}

absl::Status ManifestParser::RequireMap(const YAML::Node& key_node, const YAML::Node& value,
                                        absl::string_view path, absl::string_view expected) {
  if (value.IsMap()) return absl::OkStatus();
  return Error(value.IsNull() ? key_node : value, path, expected, Describe(value));
}

absl::Status ManifestParser::Error(const YAML::Node& at, absl::string_view path,
                                   absl::string_view expected, absl::string_view found) const {
  return Error(at, absl::StrCat(path, ": expected ", expected, ", got ", found));
}

absl::Status ManifestParser::Error(const YAML::Node& at, absl::string_view message) const {
  const int line = at.Mark().is_null() ? root_line_ : at.Mark().line + 1;
  return absl::InvalidArgumentError(absl::StrCat(source_, ":", line, ": ", message));
}

std::string ManifestParser::Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quoted(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

}  // namespace

absl::StatusOr<SweepSpec> ParseManifest(std::string_view yaml_text, std::string_view source_name) {
  std::vector<ExpandedRun> unused;
  return ParseManifest(yaml_text, source_name, &unused);
}

absl::StatusOr<SweepSpec> ParseManifest(std::string_view yaml_text, std::string_view source_name,
                                        std::vector<ExpandedRun>* runs) {
  // The public API takes std::string_view; this absl build has its own string_view type.
  const absl::string_view source(source_name.data(), source_name.size());
  ManifestParser parser(source);
  absl::StatusOr<SweepSpec> spec =
      parser.Parse(absl::string_view(yaml_text.data(), yaml_text.size()));
  if (!spec.ok()) return spec.status();
  ApplySweepDefaults(&*spec);
  if (absl::Status status = ValidateSpec(*spec, Reporter(source, &parser.lines()), runs);
      !status.ok()) {
    return status;
  }
  return spec;
}

void ApplySweepDefaults(SweepSpec* spec) {
  if (spec->max_attempts() == 0) spec->set_max_attempts(runspec::kDefaultMaxAttempts);
  if (spec->priority().empty()) spec->set_priority("normal");
  scalelab::v1::FitSpec* fit = spec->mutable_fit();
  if (fit->law().empty()) fit->set_law("chinchilla");
  if (fit->bootstrap() == 0) fit->set_bootstrap(kDefaultBootstrap);
  if (fit->confidence() == 0) fit->set_confidence(kDefaultConfidence);
  if (fit->metric().empty()) fit->set_metric("val_loss");
  bool tokens_swept = false;
  for (const scalelab::v1::Axis& axis : spec->sweep().grid().axes()) {
    tokens_swept = tokens_swept || KeysOverlap(axis.key(), "train.tokens");
  }
  for (const scalelab::v1::SearchDimension& dimension : SpaceDimensions(spec->sweep())) {
    tokens_swept = tokens_swept || KeysOverlap(dimension.key(), "train.tokens");
  }
  if (spec->sweep().has_search()) ApplySearchDefaults(spec->mutable_sweep()->mutable_search());
  const bool every_tokens_unset = spec->base().eval().every_tokens() == 0;
  ApplyRunDefaults(spec->mutable_base(), spec->kind());
  // A swept token budget gives each run its own evaluation interval (ExpandSweep fills it).
  if (tokens_swept && every_tokens_unset) spec->mutable_base()->mutable_eval()->set_every_tokens(0);
}

absl::Status ValidateSweepSpec(const SweepSpec& spec) { return ValidateSpec(spec, Reporter()); }

absl::Status ValidateSweepSpec(const SweepSpec& spec, std::vector<ExpandedRun>* runs) {
  return ValidateSpec(spec, Reporter(), runs);
}

}  // namespace scalelab::scheduler
