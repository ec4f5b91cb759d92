#include "model/loops/eval_loop.h"

#include <torch/torch.h>

#include <ostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/causal_lm.h"
#include "model/sft_data.h"
#include "model/sft_loss.h"
#include "model/task_eval.h"
#include "model/task_set.h"

namespace scalelab::model {

absl::StatusOr<TrainSummary> RunEvalLoop(const LoopContext& context) {
  const scalelab::v1::TaskEvalSpec& spec = context.spec.config().eval().tasks();
  CausalLM& model = context.model;
  TrainSummary summary;
  summary.n_params = model.NumNonEmbeddingParams();
  summary.n_params_total = model.NumParams();
  summary.flops_per_token = model.FlopsPerToken();
  scalelab::v1::RunRecord record;
  record.set_family(context.spec.config().model().family());
  record.set_n_params(summary.n_params);
  record.set_n_params_total(summary.n_params_total);
  record.set_flops_per_token(summary.flops_per_token);
  context.sink.WriteRecord(record);

  absl::StatusOr<TaskEvalSummary> evaluated =
      EvaluateTasks(model, spec, nullptr, 0, context.plan.seed, context.sink);
  if (!evaluated.ok()) return evaluated.status();

  double gen_loss = -1;
  if (!spec.tasks().generator().empty() || !spec.tasks().path().empty()) {
    absl::StatusOr<TaskSet> tasks = TaskSet::Open(spec.tasks());
    if (!tasks.ok()) {
      return absl::Status(tasks.status().code(),
                          absl::StrCat("eval.tasks.tasks: ", tasks.status().message()));
    }
    absl::StatusOr<SftExampleSet> held_out =
        BuildSftExamples(*tasks, tasks::Split::kHeldOut, spec.problems(), /*use_solution=*/false, 0,
                         context.plan.seq_len);
    // A set without held-out problems (a small JSONL file) has no generalization loss; that is
    // not a failed evaluation.
    if (held_out.ok() && !held_out->examples.empty()) {
      const torch::Device device = context.plan.cuda ? torch::kCUDA : torch::kCPU;
      gen_loss = MeanResponseLoss(model, held_out->examples, 64, context.plan.seq_len, device);
      context.sink.Write(Metric{0, 0, "gen_loss", gen_loss, SecondsSince(context.start)});
      summary.final_val_loss = gen_loss;
    } else if (!held_out.ok() && !absl::IsResourceExhausted(held_out.status())) {
      return held_out.status();
    }
  }
  summary.wall_time_s = SecondsSince(context.start);
  if (context.log != nullptr) {
    std::string pass;
    for (const auto& [k, value] : evaluated->pass_at_k) {
      absl::StrAppendFormat(&pass, " pass@%d=%.4f", k, value);
    }
    *context.log << absl::StrFormat(
                        "scalelab-train: evaluated %s (%s split, %d problems x %d samples) in "
                        "%.1f s:%s%s",
                        evaluated->task_set, evaluated->split, evaluated->problems,
                        evaluated->samples, summary.wall_time_s, pass,
                        gen_loss >= 0 ? absl::StrFormat(" gen_loss=%.4f", gen_loss) : "")
                 << std::endl;
  }
  return summary;
}

}  // namespace scalelab::model
