// RL with verifiable rewards by GRPO (RUN_KIND_GRPO), from a run's init weights (required).
//
// Each sampling step s = 1..grpo.steps:
//   1. the next grpo.prompts_per_step train-split problems of grpo.tasks (problem indices
//      (s-1)*P .. s*P-1; a loaded set cycles through its split);
//   2. grpo.group_size completions of each prompt (model/generation.h: temperature
//      grpo.temperature, stop at kEndOfResponse, at most grpo.max_new_tokens; seeded by
//      (train.seed, s), so a run is reproducible);
//   3. reward 1 when the task set's verifier accepts the completion, else 0;
//   4. group-relative advantages (model/grpo.h; grpo.advantage, grpo.eps);
//   5. grpo.passes optimisation passes over the whole batch, each one AdamW step on the clipped
//      surrogate (grpo.clip_low/high, grpo.loss_norm, and beta * k3 to a frozen copy of the init
//      weights when grpo.beta > 0), the learning rate from train.schedule over steps * passes
//      optimizer steps, gradients clipped at train.grad_clip. The old log-probabilities are
//      computed once per batch before the first pass (no grad); with one pass they are the
//      pass's own, detached, so the ratio is exactly 1.
// Completions are trained on with their stop marker when they ended with one (so the policy
// learns to stop); a completion cut at max_new_tokens has no marker.
//
// Metrics (Metric.step = optimizer steps completed, s * passes; Metric.tokens = completion
// tokens sampled so far), every sampling step:
//   reward_mean     mean reward of the batch
//   zero_adv_frac   fraction of groups whose rewards are all equal (advantage 0, no signal)
//   train_loss      the loss minimised (surrogate + beta * k3), mean over the passes
//   kl              mean k3 to the reference over completion tokens (0 when beta is 0)
//   clip_frac       fraction of completion tokens where clipping cut the gradient, mean over
//                   the passes
//   entropy         mean per-token entropy (nats) of the policy on the completions, first pass
//   completion_len  mean completion tokens, stop marker excluded
//   lr              the learning rate of the step's last pass
//   samples_per_s   completions sampled and trained on per second of the step
// and "probe_pass@1": greedy pass@1 on the first grpo.probe_problems test-split problems, at
// step 0, whenever the optimizer steps cross a multiple of eval.tasks.every_steps (when > 0) and
// at the end; at the end also pass@k by EvaluateTasks (model/task_eval.h) on eval.tasks, as
// "eval" lines. The run record (tokens = tokens through the training forward passes, prompt and
// completion, times passes; sampling compute is not counted) at the start and end; the final
// weights as a "final" artifact. GRPO runs write no checkpoints and do not resume. Torch-free
// header.

#ifndef SCALELAB_MODEL_LOOPS_GRPO_LOOP_H_
#define SCALELAB_MODEL_LOOPS_GRPO_LOOP_H_

#include "absl/status/statusor.h"
#include "model/loops/loop.h"

namespace scalelab::model {

// Errors: kFailedPrecondition when the model does not hold init weights or a checkpoint to
// resume is given; errors of TaskSet::Open (grpo.tasks) and Generate; kAborted when the loss is
// NaN or inf ("training diverged at step S: ..."), after a "diverged_step" metric; kInternal when
// final.pt cannot be written. LibTorch exceptions propagate (Train() translates them).
absl::StatusOr<TrainSummary> RunGrpoLoop(const LoopContext& context);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LOOPS_GRPO_LOOP_H_
