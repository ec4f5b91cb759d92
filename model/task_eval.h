// Pass@k of a model on a task set (v1::TaskEvalSpec): the whole of a kind EVAL run, and the
// periodic evaluation inside SFT and GRPO runs. For each of `problems` problems of the split it
// draws `samples` completions of the prompt (model/generation.h; stop at kEndOfResponse, at most
// max_new_tokens), verifies each with the task set's verifier, and estimates pass@k for every k
// (tasks/pass_at_k.h: the unbiased estimator, averaged over problems, with a bootstrap interval
// over problems). Each value goes to the sink as a v1::EvalResult (metric "pass@k", the task
// set's name, the split, category "" for the whole set and one result per task family when the
// set has several). Torch-free header.

#ifndef SCALELAB_MODEL_TASK_EVAL_H_
#define SCALELAB_MODEL_TASK_EVAL_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "model/metrics.h"
#include "model/task_set.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

class CausalLM;

struct TaskEvalSummary {
  std::string task_set;                 // the set's name
  std::string split;                    // "test", "held_out", "train"
  int64_t problems = 0;                 // problems evaluated
  int32_t samples = 0;                  // n per problem
  std::map<int32_t, double> pass_at_k;  // k -> mean pass@k over the problems
  double mean_completion_tokens = 0;    // over every sample, stop marker excluded
};

// Evaluates `model` at optimizer step `step` and writes the results to `sink`. `spec` has its
// defaults applied (runspec::ApplyRunDefaults); when spec.tasks names no generator and no path,
// `run_tasks` (the run's sft.tasks or grpo.tasks, opened) is used, and it must then be non-null.
// Sampling is deterministic given spec.seed (or `fallback_seed` when it is 0) and the step.
// The model's training mode is restored on return.
// Errors: kInvalidArgument for a spec naming no task set at all or bad options; errors of
// TaskSet::Open and Generate.
absl::StatusOr<TaskEvalSummary> EvaluateTasks(CausalLM& model,
                                              const scalelab::v1::TaskEvalSpec& spec,
                                              const TaskSet* run_tasks, int64_t step,
                                              uint64_t fallback_seed, MetricSink& sink);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TASK_EVAL_H_
