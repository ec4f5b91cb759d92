// Pretraining (RUN_KIND_PRETRAIN): next-token prediction on windows drawn from the data
// sources by mixture weight. Each step: learning rate from the schedule, one batch of
// plan.batch_size windows, AdamW step with gradient clipping at norm 1.0. Reports train_loss, lr
// and tokens_per_s about every steps/100 steps, validates when the token count crosses a multiple
// of eval.every_tokens and at the last step (and at step 0 when starting from init weights), and
// at the end saves final.pt (model/checkpoint.h). Torch-free header.

#ifndef SCALELAB_MODEL_LOOPS_PRETRAIN_LOOP_H_
#define SCALELAB_MODEL_LOOPS_PRETRAIN_LOOP_H_

#include "absl/status/statusor.h"
#include "model/loops/loop.h"

namespace scalelab::model {

// Errors: those of LoadSources (data), kAborted when the training loss becomes NaN/inf (the run
// stops at once), kInternal when final.pt cannot be written. LibTorch exceptions propagate (the
// caller, Train(), translates them).
absl::StatusOr<TrainSummary> RunPretrainLoop(const LoopContext& context);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LOOPS_PRETRAIN_LOOP_H_
