// The expansion of a sweep into its runs. The key language, defaults and rules of one run live in
// runspec/ (keys.h, run_config.h), shared with the trainer; the names are re-exported here for
// the scheduler's own code.
//
// Every function here is pure: no I/O, no shared state, safe to call from any thread.
#ifndef SCALELAB_SCHEDULER_EXPAND_H_
#define SCALELAB_SCHEDULER_EXPAND_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runspec/keys.h"
#include "runspec/run_config.h"
#include "scalelab/v1/common.pb.h"
#include "scheduler/search_space.h"

namespace scalelab::scheduler {

using runspec::ApplyOverride;
using runspec::ApplyRunDefaults;
using runspec::CheckRunConfig;
using runspec::FieldError;
using runspec::KeyShape;
using runspec::KeysOverlap;
using runspec::ResolveRunConfigKey;
using runspec::SetRunConfigValue;
using runspec::ValidateRunConfig;

// The most runs one sweep's grid may expand to. 100,000 stores in about a second (bench/
// submit_bench.cc); each run is a row and a few hundred bytes of JSON config.
inline constexpr int kMaxRunsPerSweep = 100000;
// The most runs a pipeline (main stage and later stages together) may expand to.
inline constexpr int kMaxRunsPerPipeline = 10000;

// The name of a sweep's main stage: SweepSpec.stage, or "main" when it is empty.
inline constexpr char kDefaultMainStage[] = "main";
std::string MainStageName(const scalelab::v1::SweepSpec& spec);

// One point of a sweep.
struct ExpandedRun {
  int index = 0;                   // position in the expansion, from 0
  scalelab::v1::RunConfig config;  // base + overrides + defaults; passes ValidateRunConfig
  // Swept key -> its value for this run, written as in the spec ("train.tokens" -> "5e6").
  std::map<std::string, std::string> overrides;
  scalelab::v1::RunKind kind = scalelab::v1::RUN_KIND_UNSPECIFIED;  // its stage's kind
  std::string stage;  // its stage's name (MainStageName for the main stage)
  // Index (in the same expansion) of the run this one starts from; -1 for main-stage runs.
  // config.init.from_run is left 0 for the store to fill with that run's id.
  int parent_index = -1;
  // A search sweep's run: the operator that made it ("draft" at submission); "" otherwise.
  std::string search_operator;
};

// Expands `spec.sweep` into runs: the cross product of the grid axes in order, the first axis
// varying slowest. Each run is spec.base with that point's overrides applied, then
// ApplyRunDefaults, then ValidateRunConfig. No grid gives one run with no overrides.
//
// Callers normally pass a spec that has been through ApplySweepDefaults (manifest.h), so that
// defaults taken from the base (data.mixture) are in place before the overrides.
//
// Returns InvalidArgument for an axis with an empty key, a repeated key, or no values; more than
// kMaxRunsPerSweep runs; an override that does not apply; or a run that fails validation, naming
// the run and its overrides, e.g.
//   run 3 (model.d_model=100, train.tokens=1e6): model.d_model: expected a multiple of
//   model.n_heads (8), got 100
//
// A random sweep gives random.runs distinct points of its space drawn with random.seed; a search
// sweep gives its search.initial drafts (SearchRng::ForGeneration(seed, 0)); draws whose run
// fails validation are redrawn (DrawSearchRuns).
absl::StatusOr<std::vector<ExpandedRun>> ExpandSweep(const scalelab::v1::SweepSpec& spec);

// The dimensions of a random or search sweep's space (empty for a grid) and the path errors use
// ("sweep.random.space", "sweep.search.space").
const google::protobuf::RepeatedPtrField<scalelab::v1::SearchDimension>& SpaceDimensions(
    const scalelab::v1::SweepDef& sweep);
std::string SpacePath(const scalelab::v1::SweepDef& sweep);

// One main-stage run at `point`: spec.base with the point's values applied, ApplyRunDefaults,
// then ValidateRunConfig. InvalidArgument "run <index> (<key>=<value>, ...): <problem>".
absl::StatusOr<ExpandedRun> BuildPointRun(const scalelab::v1::SweepSpec& spec,
                                          const SearchPoint& point, int index);

// `count` runs at distinct points drawn from `space` (none in `taken`), indexes from
// `first_index`. A draw whose run fails validation is redrawn, up to 20 draws per run; when
// fewer valid points turn up, InvalidArgument naming the count found and the first problem.
absl::StatusOr<std::vector<ExpandedRun>> DrawSearchRuns(const scalelab::v1::SweepSpec& spec,
                                                        const SearchSpace& space, int count,
                                                        SearchRng& rng, int first_index);

// Expands a whole pipeline: the main stage as ExpandSweep does, then each of spec.stages in
// order. For every run of the stage's parent stage (`after`, "" = the main stage) and every point
// of the stage's grid, one child: the stage's base with the point applied, the parent's `model`,
// ApplyRunDefaults for the stage's kind, then ValidateRunConfig for that kind with init.from_run
// standing for the parent (the store fills in the parent's real id). Children follow their parent
// stage's runs in parent order, then grid order; indexes continue from the main stage's.
//
// Checks only what ExpandSweep checks, per stage, plus: the total over all stages at most
// kMaxRunsPerPipeline, and every `after` naming an earlier stage (ValidateSweepSpec checks the rest
// of a stage). InvalidArgument naming the stage ("stages[1] (grpo): run 4 (...): ...").
absl::StatusOr<std::vector<ExpandedRun>> ExpandPipeline(const scalelab::v1::SweepSpec& spec);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_EXPAND_H_
