// Train(): one complete training run of the byte-level Transformer, reporting metrics to a
// MetricSink. This is the whole of `scalelab-train` except flag parsing and stdout; tests drive it
// with an in-memory sink. Torch-free header: LibTorch stays inside trainer.cc and transformer.cc.
//
// Run shape: steps = ceil(tokens / batch_tokens); each step draws batch_tokens / seq_len random
// windows (sources by mixture weight), takes one AdamW step (betas 0.9/0.95, decay on 2-D weight
// matrices only, gradient norm clipped to 1.0) with the warmup + cosine/constant schedule.
//
// Metrics, in order (see metrics.h for names and units):
//   step 0:  n_params, n_params_total
//   every max(1, steps/100) steps and at the last step: train_loss, lr, tokens_per_s
//   each time the run crosses a multiple of eval_every_tokens, and at the last step:
//            val_loss/<source> for each source (only when there are several), then val_loss
//            (the mixture-weighted mean over sources).
// tokens_per_s counts training time only (evaluation excluded).

#ifndef SCALELAB_MODEL_TRAINER_H_
#define SCALELAB_MODEL_TRAINER_H_

#include <cstdint>
#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/metrics.h"
#include "model/train_options.h"

namespace scalelab::model {

struct TrainSummary {
  int64_t steps = 0;
  int64_t tokens = 0;             // Training tokens consumed.
  int64_t n_params = 0;           // Non-embedding parameters.
  int64_t n_params_total = 0;     // All parameters (tied embedding once).
  double final_train_loss = 0;    // Nats/token, last reporting interval.
  double final_val_loss = 0;      // Nats/token, mixture-weighted, at the last step.
  double wall_time_s = 0;         // Whole call, loading and evaluation included.
  double train_tokens_per_s = 0;  // Training tokens over training time.
};

// Runs one training run to completion. Blocks the calling thread; sets LibTorch's (and
// OpenBLAS's) thread counts for the process. `log`, when given, gets two short human-readable
// lines (the configuration at the start, a summary at the end).
//
// Errors (no exception escapes; LibTorch errors are translated here):
//   kInvalidArgument   options fail Validate(), or --device=cuda without CUDA;
//   kNotFound, kOutOfRange, kDataLoss   a token file is missing, too short or unreadable;
//   kAborted           the training loss became NaN/inf ("diverged"); the run stopped at once;
//   kResourceExhausted out of memory;  kInternal  any other LibTorch or C++ error.
absl::StatusOr<TrainSummary> Train(const TrainOptions& options, MetricSink& sink,
                                   std::ostream* log = nullptr);

// Process exit codes of scalelab-train, part of the worker contract.
inline constexpr int kExitOk = 0;
inline constexpr int kExitOtherError = 1;
inline constexpr int kExitInvalidOptions = 2;
inline constexpr int kExitDataError = 3;
inline constexpr int kExitDiverged = 4;

// Maps a status from option parsing or Train() to the exit code above.
int ExitCodeForStatus(const absl::Status& status);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TRAINER_H_
