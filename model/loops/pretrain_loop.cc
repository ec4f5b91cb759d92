#include "model/loops/pretrain_loop.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <ostream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/batches.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/data.h"
#include "model/evaluation.h"
#include "model/lr_schedule.h"
#include "model/optimizer.h"

namespace scalelab::model {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Training loss, step count and time since the last report.
struct Interval {
  double loss_sum = 0;
  int64_t steps = 0;
  double train_s = 0;
};

class PretrainLoop {
 public:
  PretrainLoop(const LoopContext& context, std::vector<SourceData> sources)
      : context_(context),
        plan_(context.plan),
        model_(context.model),
        device_(plan_.cuda ? torch::kCUDA : torch::kCPU),
        sources_(std::move(sources)),
        batches_(sources_, plan_.seq_len, plan_.batch_size, plan_.seed),
        evaluator_(sources_, plan_.seq_len, plan_.val_windows, plan_.batch_size, device_),
        optimizer_(MakeAdamW(model_, plan_.peak_lr, plan_.weight_decay)),
        parameters_(model_.parameters()) {}

  absl::StatusOr<TrainSummary> Execute() {
    ReportModel();
    if (context_.from_init_weights) Validate(0);
    for (int64_t step_idx = 0; step_idx < plan_.steps; ++step_idx) {
      const Clock::time_point step_start = Clock::now();
      const double lr =
          LearningRateAt(step_idx, plan_.steps, plan_.peak_lr, plan_.warmup, plan_.schedule);
      absl::StatusOr<double> loss = TrainStep(step_idx + 1, lr);
      if (!loss.ok()) {
        // What was trained still used compute: the record says so before the run fails.
        ReportRecord(step_idx * plan_.batch_tokens);
        return loss.status();
      }
      interval_.loss_sum += *loss;
      ++interval_.steps;
      interval_.train_s += SecondsSince(step_start);

      const int64_t step = step_idx + 1;
      const bool last = step == plan_.steps;
      if (step % report_every_ == 0 || last) ReportTraining(step, lr);
      if (EvaluationDue(step) || last) summary_.final_val_loss = Validate(step).mixture_loss;
    }
    return Finish();
  }

 private:
  void Emit(int64_t step, const std::string& name, double value) {
    context_.sink.Write(
        Metric{step, step * plan_.batch_tokens, name, value, SecondsSince(context_.start)});
  }

  void ReportModel() {
    summary_.steps = plan_.steps;
    summary_.n_params = model_.NumNonEmbeddingParams();
    summary_.n_params_total = model_.NumParams();
    summary_.flops_per_token = model_.FlopsPerToken();
    if (context_.log != nullptr) {
      *context_.log << absl::StrFormat(
                           "scalelab-train: %s | %d non-embedding params (%d total), %.3g "
                           "FLOPs/token | %d steps x %d tokens, lr=%g %s | %d source(s) | %s, "
                           "%d thread(s)",
                           context_.spec.config().model().ShortDebugString(), summary_.n_params,
                           summary_.n_params_total, summary_.flops_per_token, plan_.steps,
                           plan_.batch_tokens, plan_.peak_lr, LrScheduleName(plan_.schedule),
                           sources_.size(), device_.str(), plan_.threads)
                    << std::endl;
    }
    ReportRecord(0);
  }

  // The run record with `tokens` trained so far (its FLOPs: flops_per_token per token).
  void ReportRecord(int64_t tokens) {
    scalelab::v1::RunRecord record;
    record.set_family(context_.spec.config().model().family());
    record.set_n_params(summary_.n_params);
    record.set_n_params_total(summary_.n_params_total);
    record.set_flops_per_token(summary_.flops_per_token);
    record.set_tokens(static_cast<double>(tokens));
    record.set_flops(summary_.flops_per_token * static_cast<double>(tokens));
    context_.sink.WriteRecord(record);
  }

  // One optimizer step; returns its training loss, or kAborted when the loss is not finite.
  absl::StatusOr<double> TrainStep(int64_t step, double lr) {
    SetLearningRate(*optimizer_, lr);
    TokenTensors batch = batches_.Next(device_);
    optimizer_->zero_grad();
    torch::Tensor loss = model_.Loss(batch.inputs, batch.targets);
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      return absl::AbortedError(absl::StrCat("training diverged at step ", step,
                                             ": train_loss=", loss_value, "; run stopped"));
    }
    loss.backward();
    torch::nn::utils::clip_grad_norm_(parameters_, 1.0);
    optimizer_->step();
    return loss_value;
  }

  void ReportTraining(int64_t step, double lr) {
    summary_.final_train_loss = interval_.loss_sum / static_cast<double>(interval_.steps);
    total_train_s_ += interval_.train_s;
    Emit(step, "train_loss", summary_.final_train_loss);
    Emit(step, "lr", lr);
    Emit(step, "tokens_per_s",
         static_cast<double>(interval_.steps * plan_.batch_tokens) / interval_.train_s);
    interval_ = Interval{};
  }

  // True when the step's tokens cross a multiple of eval.every_tokens.
  bool EvaluationDue(int64_t step) const {
    const double before = static_cast<double>((step - 1) * plan_.batch_tokens);
    const double after = static_cast<double>(step * plan_.batch_tokens);
    return std::floor(after / plan_.eval_every_tokens) >
           std::floor(before / plan_.eval_every_tokens);
  }

  Validation Validate(int64_t step) {
    Validation validation = evaluator_.Evaluate(model_);
    if (validation.per_source.size() > 1) {
      for (const SourceLoss& source : validation.per_source) {
        Emit(step, "val_loss/" + source.name, source.loss);
      }
    }
    Emit(step, "val_loss", validation.mixture_loss);
    return validation;
  }

  absl::StatusOr<TrainSummary> Finish() {
    summary_.tokens = plan_.steps * plan_.batch_tokens;
    ReportRecord(summary_.tokens);
    summary_.train_tokens_per_s = static_cast<double>(summary_.tokens) / total_train_s_;
    absl::StatusOr<std::string> weights =
        SaveFinalWeights(model_, context_.spec.output_dir(), plan_.steps, context_.sink);
    if (!weights.ok()) return weights.status();
    summary_.final_weights = *std::move(weights);
    summary_.wall_time_s = SecondsSince(context_.start);
    if (context_.log != nullptr) {
      *context_.log << absl::StrFormat(
                           "scalelab-train: done %d steps, %d tokens in %.1f s (%.0f train "
                           "tokens/s); train_loss=%.4f val_loss=%.4f",
                           plan_.steps, summary_.tokens, summary_.wall_time_s,
                           summary_.train_tokens_per_s, summary_.final_train_loss,
                           summary_.final_val_loss)
                    << std::endl;
    }
    return summary_;
  }

  const LoopContext& context_;
  const TrainPlan& plan_;
  CausalLM& model_;
  torch::Device device_;
  std::vector<SourceData> sources_;  // Before batches_ and evaluator_, which read it.
  TrainBatches batches_;
  Evaluator evaluator_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> parameters_;
  const int64_t report_every_ = std::max<int64_t>(1, plan_.steps / 100);
  Interval interval_;
  double total_train_s_ = 0;
  TrainSummary summary_;
};

}  // namespace

absl::StatusOr<TrainSummary> RunPretrainLoop(const LoopContext& context) {
  absl::StatusOr<std::vector<SourceData>> sources =
      LoadSources(context.plan.sources, context.plan.seq_len);
  if (!sources.ok()) return sources.status();
  PretrainLoop loop(context, *std::move(sources));
  return loop.Execute();
}

}  // namespace scalelab::model
