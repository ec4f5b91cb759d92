// Evaluation (RUN_KIND_EVAL): the starting weights (spec.init_artifact, required) scored once,
// at step 0, with no training. EvaluateTasks (model/task_eval.h) with eval.tasks writes pass@k
// (and the suite's per-category results when eval.tasks.suite is set); when eval.tasks names a
// task set, the metric gen_loss is its mean response-token cross-entropy on eval.tasks.problems
// problems of its held_out split (the generalization loss SFT runs report), examples longer
// than model.seq_len left out. The run record is written once (no tokens trained); no weights
// are saved. Torch-free header.

#ifndef SCALELAB_MODEL_LOOPS_EVAL_LOOP_H_
#define SCALELAB_MODEL_LOOPS_EVAL_LOOP_H_

#include "absl/status/statusor.h"
#include "model/loops/loop.h"

namespace scalelab::model {

// Errors: those of EvaluateTasks and TaskSet::Open (naming eval.tasks); LibTorch exceptions
// propagate (Train() translates them).
absl::StatusOr<TrainSummary> RunEvalLoop(const LoopContext& context);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LOOPS_EVAL_LOOP_H_
