// The numbers a training loop runs on, derived from a validated v1::RunSpec: step count, batch
// shape, optimizer settings, evaluation cadence, data sources. A view, not a second contract: it
// holds no defaults and checks no rules (runspec/ owns both), so a field missing here is read
// from the spec itself. Torch-free and pure.

#ifndef SCALELAB_MODEL_TRAIN_PLAN_H_
#define SCALELAB_MODEL_TRAIN_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "model/data.h"
#include "model/lr_schedule.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

struct TrainPlan {
  int64_t steps = 0;         // Optimizer steps: ceil(train.tokens / train.batch_tokens).
  int64_t seq_len = 0;       // model.seq_len, tokens per window.
  int64_t batch_tokens = 0;  // train.batch_tokens, tokens per step.
  int64_t batch_size = 0;    // Windows per step: batch_tokens / seq_len.
  double peak_lr = 0;
  LrSchedule schedule = LrSchedule::kCosine;
  double warmup = 0;  // Fraction of the steps.
  double weight_decay = 0;
  uint64_t seed = 0;
  double eval_every_tokens = 0;  // Validate when the token count crosses a multiple of this.
  int64_t val_windows = 0;       // Per source and evaluation: ceil(eval.val_tokens / seq_len).
  // Sorted by name (protobuf maps have no order). Weights normalized to sum 1; an empty mixture
  // weighs sources equally; a source absent from a non-empty mixture gets weight 0: validated on,
  // never trained on.
  std::vector<DataSource> sources;
  int64_t mixture_window = 1;    // data.mixture_window: batches over which the mixture is exact.
  int64_t micro_batch_size = 0;  // Windows per forward/backward: micro_batch_tokens / seq_len.
  double decay = 0;              // train.decay (wsd)
  double final_lr = 0;           // train.final_lr, fraction of peak
  double grad_clip = 0;          // train.grad_clip
  bool bf16 = false;             // train.precision == "bf16"
  double divergence_factor = 0;  // train.divergence_factor
  int64_t checkpoint_every_steps = 0;   // checkpoint.every_steps (0: not by steps)
  double checkpoint_every_s = 0;        // checkpoint.every_s (0: not by time)
  int64_t checkpoint_keep = 0;          // checkpoint.keep
  int64_t position_buckets = 1;         // eval.position_buckets
  std::vector<int64_t> recall_lengths;  // eval.recall_lengths
  int64_t recall_pairs = 0;
  int64_t recall_examples = 0;
  bool cuda = false;  // execution.device == "cuda"
  int threads = 1;    // execution.threads
};

// `spec` must have passed runspec::ValidateRunSpec.
TrainPlan PlanFor(const scalelab::v1::RunSpec& spec);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TRAIN_PLAN_H_
