// Supervised fine-tuning (RUN_KIND_SFT, v1::SftSpec) on a task set's train split.
//
// The run: sft.unique_examples train problems become prompt + response examples
// (model/sft_data.h), those outside [sft.min_example_tokens, sft.max_example_tokens] are dropped
// (counted in the start log line; none left is an error), and round(kept x sft.epochs) examples
// are trained in shuffled epoch order (train.seed), sft.batch_examples per optimizer step
// (the last step may hold fewer), one per row padded to the batch's longest or packed several to
// a row of model.seq_len (sft.pack). The loss is the mean cross-entropy over the batch's
// response tokens only. Each step: learning rate from the schedule, bf16 autocast of the forward
// pass when train.precision says so, a stop when the loss is not finite (train.divergence_factor
// is not used: response-token losses near 0 make a ratio to the best loss fire on noise),
// gradient clipping at train.grad_clip and an AdamW step, as in pretraining.
//
// Metrics (Metric.tokens = example tokens trained so far, prompt and response):
//   train_loss, lr, tokens_per_s   about every steps/100 steps and at the last step;
//   gen_loss                       mean response-token cross-entropy on sft.held_out_examples
//                                  held_out problems (same length filter), at step 0, every
//                                  sft.eval_every_steps and at the end;
//   evaluation results             EvaluateTasks (model/task_eval.h) with eval.tasks (the run's
//                                  sft.tasks when it names none) every eval.tasks.every_steps,
//                                  at the end, and at step 0 when starting from init weights.
// Checkpoints into spec.checkpoint_dir as the pretraining loop writes them (every
// checkpoint.every_steps steps or every_s seconds), and a resumed run continues from the newest
// with the same example order. At the end the weights go to final.pt as the "final" artifact, which
// the children of a pipeline stage start from. Torch-free header.

#ifndef SCALELAB_MODEL_LOOPS_SFT_LOOP_H_
#define SCALELAB_MODEL_LOOPS_SFT_LOOP_H_

#include "absl/status/statusor.h"
#include "model/loops/loop.h"

namespace scalelab::model {

// Errors: kInvalidArgument naming sft.tasks for a task set that does not open, naming
// sft.min_example_tokens / sft.max_example_tokens when the length filter leaves no train or
// held-out example, naming sft.epochs when unique x epochs rounds to no example, and when
// context.resume does not fit this run; errors of EvaluateTasks; kAborted when the loss is not
// finite (after a "diverged_step" metric); kInternal when a checkpoint or final.pt cannot be
// written. LibTorch exceptions propagate (Train() translates them).
absl::StatusOr<TrainSummary> RunSftLoop(const LoopContext& context);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LOOPS_SFT_LOOP_H_
