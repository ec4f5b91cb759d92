// Sweep manifests: YAML text -> scalelab.v1.SweepSpec, with defaults and validation.
//
// A manifest looks like
//
//   name: synthetic-mix-scaling       # [A-Za-z0-9._-]{1,100}
//   project: pretraining              # same charset
//   kind: pretrain                    # pretrain | sft | grpo | eval
//   base:                             # a RunConfig, keyed by its proto field names
//     model: {family: transformer, d_model: 128, n_layers: 4, n_heads: 4, seq_len: 256}
//     data:  {sources: {natural: data/natural}, mixture: {natural: 1.0}}
//     train: {tokens: 2e7, batch_tokens: 16384, lr: 3e-3, schedule: cosine, warmup: 0.05}
//     eval:  {every_tokens: 2e6, val_tokens: 2e5}
//     resources: {gpus: 1}
//   sweep:                            # optional; without it the sweep is one run
//     grid: {model.d_model: [64, 128, 256], train.tokens: [5e6, 1e7, 2e7]}
//   fit:                              # optional; fitted when the sweep or a group completes
//     law: chinchilla                 # chinchilla (default) | compute | none
//     group_by: [data.mixture.rephrased]   # grid keys; one fit per group
//     bootstrap: 1000                 # refits for intervals, [1, 10000]
//     confidence: 0.95                # interval level, (0, 1)
//     metric: val_loss                # the run's final value of this metric is fitted
//   max_attempts: 3                   # optional, [1, 100]
//   stage: pretrain                   # optional: the main stage's name (default "main")
//   stages:                           # optional: later stages of a pipeline, in order
//     - name: sft                     # unique, same charset as name
//       kind: sft                     # pretrain | sft | grpo | eval
//       after: pretrain               # the parent stage: the main stage (default) or an
//                                     # earlier one; one child per parent run and grid point
//       base: {sft: {tasks: {generator: addition}}}   # no model or init keys: each child
//                                     # inherits its parent's model and starts from its weights
//       sweep: {grid: {sft.epochs: [1, 2]}}
//       max_attempts: 2               # optional, [1, 100]; default the sweep's
//
// Inside `base`, a nested map and a dotted key are the same thing (`model: {d_model: 64}` or
// `model.d_model: 64`); grid keys use the dotted form (see expand.h for the key language).
// Grid values are kept as written ("5e6"), so a run's overrides read like the manifest.
//
// All functions are pure and thread-safe.
#ifndef SCALELAB_SCHEDULER_MANIFEST_H_
#define SCALELAB_SCHEDULER_MANIFEST_H_

#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::scheduler {

// Parses a YAML manifest, applies ApplySweepDefaults and validates the result as
// ValidateSweepSpec does, including every grid value and every run of the expansion.
//
// `source_name` (e.g. "sweep.yaml") starts every error message. All errors are InvalidArgument,
// in the form "<source>:<line>: <field path>: expected <what>, got <what was found>", e.g.
//   sweep.yaml:14: sweep.grid."model.d_model": expected each value to be an integer, got "big"
//   sweep.yaml:6: base.model: expected one of the keys family, d_model, ..., got "d_modle"
// YAML syntax errors read "<source>:<line>:<column>: YAML syntax error: <parser message>".
// Lines and columns are 1-based. An error about a field the manifest does not mention points at
// the line of the nearest enclosing section that it does.
absl::StatusOr<scalelab::v1::SweepSpec> ParseManifest(std::string_view yaml_text,
                                                      std::string_view source_name);

struct ExpandedRun;  // scheduler/expand.h

// As ParseManifest, and on success `*runs` (not null) holds ExpandPipeline of the returned spec:
// the expansion validation made anyway, so that a caller storing the runs does not expand (and
// validate) every run a second time. SweepService::SubmitSweep uses it.
absl::StatusOr<scalelab::v1::SweepSpec> ParseManifest(std::string_view yaml_text,
                                                      std::string_view source_name,
                                                      std::vector<ExpandedRun>* runs);

// Default bootstrap refits and interval level of a sweep's fits.
inline constexpr int kDefaultBootstrap = 1000;
inline constexpr double kDefaultConfidence = 0.95;

// Fills the spec's defaults: max_attempts 3, fit {law chinchilla, bootstrap 1000, confidence
// 0.95, metric val_loss}, and ApplyRunDefaults (expand.h) on the base, except
// that eval.every_tokens stays 0 when train.tokens is swept, so that ExpandSweep derives it from
// each run's own token budget. Call this before ValidateSweepSpec on a spec that did not come from
// ParseManifest. Idempotent.
void ApplySweepDefaults(scalelab::v1::SweepSpec* spec);

// Validates a spec (normally after ApplySweepDefaults). Checks, in this order:
//   name and project match [A-Za-z0-9._-]{1,100}; kind is set;
//   every grid axis names one RunConfig value (once) and has at least one value;
//   at most kMaxRunsPerSweep runs (expand.h);
//   base passes CheckRunConfig (expand.h), except the rules that read a swept key;
//   each grid value parses for its field, appears once in its axis (64 and 64.0 are the same
//     value), and passes the rules that read only that axis;
//   fit.law is "" or "chinchilla"; every fit.group_by key is a grid key; max_attempts in
//     [1, 100], or 0 for the default;
//   the main stage's name (SweepSpec.stage) matches the name charset; each stage: a valid name
//     used once (not the main stage's), a kind, `after` naming the main stage or an earlier
//     stage, no model or init keys in its base or grid, max_attempts in [0, 100], and its base and
//     grid checked as the main stage's are, against the first run of its parent stage (whose
//     model it inherits) for the stage's kind;
//   every run of ExpandPipeline passes ValidateRunConfig for its kind (rules relating two fields,
//     such as d_model divisible by n_heads, are checked here, since either field may be swept).
// Errors about a stage start with its path: "stages[1].sweep.grid.\"sft.epochs\": ...".
// Defaults left at 0 or empty are read as ExpandSweep will fill them.
// Returns the first problem as InvalidArgument "<field path>: expected <what>, got <found>".
absl::Status ValidateSweepSpec(const scalelab::v1::SweepSpec& spec);
// As above, and on success `*runs` (not null) holds ExpandPipeline(spec).
absl::Status ValidateSweepSpec(const scalelab::v1::SweepSpec& spec, std::vector<ExpandedRun>* runs);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_MANIFEST_H_
