// The defaults and the validation rules of one run: the single place where either lives. The
// scheduler calls them at submission (on every expanded run) and `scalelab-train` calls them at
// start (ValidateRunSpec), so a run the scheduler accepts is a run the trainer accepts.
//
// Every function here is pure and thread-safe.
#ifndef SCALELAB_RUNSPEC_RUN_CONFIG_H_
#define SCALELAB_RUNSPEC_RUN_CONFIG_H_

#include <vector>

#include "absl/status/status.h"
#include "runspec/keys.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::runspec {

// Attempts per run when a manifest does not say (SweepSpec.max_attempts == 0).
inline constexpr int kDefaultMaxAttempts = 3;

// Fills fields left at 0 or empty with their defaults:
//   model.family "transformer", model.vocab_size 256, train.schedule "cosine",
//   train.weight_decay 0.1, resources.cpus 1 when resources.gpus is 0, data.mixture weight 1.0 for
//   every source when the mixture is empty, eval.val_tokens 65536,
//   eval.every_tokens train.tokens / 10.
// model.d_ff stays 0, which the trainer reads as 4 * d_model. Idempotent.
// (proto3 cannot tell "0" from "unset", so weight_decay cannot be configured to exactly 0.)
// Kinds other than PRETRAIN fill their own sections too (sft, grpo, eval.tasks; see
// common.proto for each default) and leave the pretraining-only ones (eval.every_tokens) alone.
void ApplyRunDefaults(scalelab::v1::RunConfig* config,
                      scalelab::v1::RunKind kind = scalelab::v1::RUN_KIND_PRETRAIN);

// Checks every rule of one run (after defaults) and returns the violations in a fixed order:
// model.family is "transformer"; d_model, n_layers, n_heads, seq_len positive; d_model divisible
// by n_heads; d_ff >= 0; vocab_size in [256, 65536]; at least one data source, each with a
// non-empty folder; every mixture key names a source; weights finite, >= 0, with a positive sum;
// train.tokens > 0; batch_tokens > 0 and divisible by seq_len; lr > 0; schedule "cosine" or
// "constant"; warmup in [0, 1); weight_decay >= 0; eval.every_tokens > 0; eval.val_tokens > 0;
// resources.gpus >= 0 and cpus >= 0; init ids >= 0, at most one of them set. Floating-point
// values must be finite.
//
// By kind: PRETRAIN needs data sources, train.tokens and the validation cadence; SFT needs
// sft.tasks (a generator or a path) and no data or train.tokens; GRPO needs grpo.tasks,
// grpo.steps and starting weights (init); EVAL needs eval.tasks naming a task set (or a suite)
// and starting weights. train.layerskip is for the transformer family only.
std::vector<FieldError> CheckRunConfig(
    const scalelab::v1::RunConfig& config,
    scalelab::v1::RunKind kind = scalelab::v1::RUN_KIND_PRETRAIN);

// The first violation of CheckRunConfig as InvalidArgument ("model.d_model: expected a positive
// integer, got 0"), or OK.
absl::Status ValidateRunConfig(const scalelab::v1::RunConfig& config,
                               scalelab::v1::RunKind kind = scalelab::v1::RUN_KIND_PRETRAIN);

// Validates a whole run contract as the trainer receives it: ValidateRunConfig on config, then
// kind set (not UNSPECIFIED), attempt >= 1, execution.device "cpu" or "cuda" with
// "cuda" only when resources.gpus > 0, execution.threads >= 1, and every data source folder
// and task file (sft/grpo tasks.path, eval.tasks.tasks.path, eval.tasks.suite) absolute (the
// worker resolves them). InvalidArgument naming the field, as above.
absl::Status ValidateRunSpec(const scalelab::v1::RunSpec& spec);

}  // namespace scalelab::runspec

#endif  // SCALELAB_RUNSPEC_RUN_CONFIG_H_
