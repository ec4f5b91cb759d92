// Pretraining (RUN_KIND_PRETRAIN): next-token prediction on windows drawn from the data
// sources by mixture weight. Each step: learning rate from the schedule (cosine, constant or
// wsd), one batch of plan.batch_size windows in micro-batches of plan.micro_batch_size with the
// gradients accumulated (the loss is TransformerImpl::LayerSkipLoss when train.layerskip sets
// max_dropout or exit_scale, model/layerskip.h; else CausalLM::Loss), bf16 autocast of the
// forward pass when plan.bf16, a divergence check (model/loops/divergence.h), gradient
// clipping at plan.grad_clip and an AdamW step. Reports
// train_loss, lr and tokens_per_s about every steps/100 steps, validates when the token count
// crosses a multiple of eval.every_tokens and at the last step (and at step 0 when starting from
// init weights), writes a checkpoint into spec.checkpoint_dir (when set) every
// plan.checkpoint_every_steps steps or plan.checkpoint_every_s seconds, whichever comes first,
// announcing each as a "checkpoint" artifact and keeping the newest plan.checkpoint_keep, and at
// the end saves final.pt (model/checkpoint.h). Torch-free header.

#ifndef SCALELAB_MODEL_LOOPS_PRETRAIN_LOOP_H_
#define SCALELAB_MODEL_LOOPS_PRETRAIN_LOOP_H_

#include "absl/status/statusor.h"
#include "model/loops/loop.h"

namespace scalelab::model {

// Errors: those of LoadSources (data); kAborted when the training loss is NaN/inf or exceeds
// divergence_factor x the best smoothed loss ("training diverged at step S: ..."), after a
// "diverged_step" metric; kInvalidArgument when context.resume does not fit this run; kInternal
// when a checkpoint or final.pt cannot be written. LibTorch exceptions propagate (the caller,
// Train(), translates them).
absl::StatusOr<TrainSummary> RunPretrainLoop(const LoopContext& context);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LOOPS_PRETRAIN_LOOP_H_
