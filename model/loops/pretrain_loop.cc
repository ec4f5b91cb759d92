#include "model/loops/pretrain_loop.h"

#include <ATen/autocast_mode.h>
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
#include "model/dist.h"
#include "model/evaluation.h"
#include "model/layerskip.h"
#include "model/long_context.h"
#include "model/loops/divergence.h"
#include "model/lr_schedule.h"
#include "model/optimizer.h"
#include "model/transformer.h"

namespace scalelab::model {
namespace {

using Clock = std::chrono::steady_clock;

// Training loss, step count and time since the last report.
struct Interval {
  double loss_sum = 0;
  int64_t steps = 0;
  double train_s = 0;
};

// bf16 autocast for the forward pass on CUDA (fp32 master weights and optimizer; the backward
// pass runs outside autocast as LibTorch recommends). Restores the previous settings.
class AutocastScope {
 public:
  explicit AutocastScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    was_enabled_ = at::autocast::is_enabled();
    previous_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(true);
  }
  ~AutocastScope() {
    if (!enabled_) return;
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
    // The cast copies of the weights are only valid until the optimizer changes them.
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kBFloat16;
};

class PretrainLoop {
 public:
  PretrainLoop(const LoopContext& context, std::vector<SourceData> sources)
      : context_(context),
        plan_(context.plan),
        model_(context.model),
        device_(plan_.cuda ? torch::kCUDA : torch::kCPU),
        sources_(std::move(sources)),
        batches_(sources_, plan_.seq_len, plan_.batch_size, plan_.seed, plan_.mixture_window),
        evaluator_(sources_, plan_.seq_len, plan_.val_windows, plan_.batch_size, device_,
                   plan_.position_buckets),
        optimizer_(MakeAdamW(model_, plan_.peak_lr, plan_.weight_decay)),
        parameters_(model_.parameters()),
        lr_spec_{plan_.schedule, plan_.peak_lr, plan_.warmup, plan_.decay, plan_.final_lr},
        divergence_(plan_.divergence_factor,
                    std::llround(plan_.warmup * static_cast<double>(plan_.steps))),
        group_(context.group),
        rank_batch_size_(group_ == nullptr ? plan_.batch_size
                                           : plan_.batch_size / group_->world_size()),
        micro_batch_size_(plan_.micro_batch_size > 0
                              ? std::min(plan_.micro_batch_size, rank_batch_size_)
                              : rank_batch_size_),
        reports_(group_ == nullptr || group_->rank() == 0) {
    const scalelab::v1::LayerSkipSpec& layerskip = context_.spec.config().train().layerskip();
    if (LayerSkipEnabled(layerskip)) {
      layerskip_ = &layerskip;
      // runspec refuses LayerSkip outside the transformer family; Execute() reports a model
      // that is not one anyway.
      transformer_ = dynamic_cast<TransformerImpl*>(&model_);
    }
  }

  absl::StatusOr<TrainSummary> Execute() {
    if (layerskip_ != nullptr && transformer_ == nullptr) {
      return absl::InvalidArgumentError(
          "train.layerskip: expected model.family \"transformer\" (LayerSkip skips whole "
          "transformer blocks)");
    }
    if (context_.resume != nullptr) {
      if (absl::Status status = Resume(*context_.resume); !status.ok()) return status;
    }
    if (absl::Status status = CheckRanksAgree(); !status.ok()) return status;
    ReportModel();
    if (context_.from_init_weights && first_step_ == 0 && reports_) Validate(0);
    last_checkpoint_ = Clock::now();
    for (int64_t step_idx = first_step_; step_idx < plan_.steps; ++step_idx) {
      const Clock::time_point step_start = Clock::now();
      const double lr = LearningRateAt(step_idx, plan_.steps, lr_spec_);
      const int64_t step = step_idx + 1;
      absl::StatusOr<double> loss = TrainStep(step_idx, lr);
      if (!loss.ok()) {
        if (absl::IsAborted(loss.status())) {
          Emit(step, "diverged_step", static_cast<double>(step));
        }
        // What was trained still used compute: the record says so before the run fails.
        ReportRecord(step_idx * plan_.batch_tokens);
        return loss.status();
      }
      interval_.loss_sum += *loss;
      ++interval_.steps;
      interval_.train_s += SecondsSince(step_start);

      const bool last = step == plan_.steps;
      if (step % report_every_ == 0 || last) ReportTraining(step, lr);
      if (reports_ && (EvaluationDue(step) || last)) {
        summary_.final_val_loss = Validate(step).mixture_loss;
      }
      if (reports_ && CheckpointDue(step)) {
        if (absl::Status status = SaveCheckpoint(step); !status.ok()) return status;
      }
      if (!last && PreemptionAgreed()) return Preempt(step);
    }
    return Finish();
  }

 private:
  void Emit(int64_t step, const std::string& name, double value) {
    context_.sink.Write(
        Metric{step, step * plan_.batch_tokens, name, value, SecondsSince(context_.start)});
  }

  // Continues from `saved`: its weights, optimizer state, RNG, data position and counters.
  absl::Status Resume(SavedTrainState& saved) {
    const LoopCounters& counters = saved.counters();
    if (counters.step <= 0 || counters.step >= plan_.steps) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", saved.path(), ": step ", counters.step, "; expected a step between 1 and ",
          plan_.steps - 1, " (train.tokens / train.batch_tokens) of this run"));
    }
    if (absl::Status status = saved.Restore(model_, *optimizer_); !status.ok()) return status;
    first_step_ = counters.step;
    batches_.Seek(counters.data_position);
    divergence_.Restore(counters.divergence);
    interval_ =
        Interval{counters.interval_loss_sum, counters.interval_steps, counters.interval_train_s};
    summary_.final_train_loss = counters.final_train_loss;
    summary_.final_val_loss = counters.final_val_loss;
    if (context_.log != nullptr) {
      *context_.log << "scalelab-train: resumed from step " << first_step_ << " (" << saved.path()
                    << ")" << std::endl;
    }
    return absl::OkStatus();
  }

  // Every rank must continue from the same step: a rank that found no checkpoint (or another
  // one) would train different weights. checkpoint_dir must be shared by the ranks' nodes.
  absl::Status CheckRanksAgree() {
    if (group_ == nullptr) return absl::OkStatus();
    const int64_t lowest = group_->Min(first_step_);
    const int64_t highest = group_->Max(first_step_);
    if (lowest == highest) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint_dir ", context_.spec.checkpoint_dir(),
                     ": the ranks resume from different "
                     "steps (",
                     lowest, " to ", highest, "; this rank ", group_->rank(), ": ", first_step_,
                     "); expected one checkpoint_dir every rank reads"));
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
    ReportRecord(first_step_ * plan_.batch_tokens);
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

  // One optimizer step over plan.batch_size windows in micro-batches of micro_batch_size_; each
  // micro-batch's mean loss is scaled by 1/n so the accumulated gradient is the whole batch's
  // (equal token counts per micro-batch make the mean of means the batch mean). Data-parallel,
  // every rank draws the same global batch (same seed, same position) and trains on its own
  // contiguous rank_batch_size_ windows of it; averaging the gradients and the losses over the
  // ranks (equal shares) then gives the global batch's, and every rank takes the same optimizer
  // step and the same divergence decision. Returns the
  // step's training loss, or kAborted from the divergence detector, before the weights change.
  // With train.layerskip the loss is the LayerSkip loss at this step (layer dropout and the
  // weighted early exits, model/layerskip.h), so train_loss then is that weighted sum.
  absl::StatusOr<double> TrainStep(int64_t step_idx, double lr) {
    const int64_t step = step_idx + 1;
    SetLearningRate(*optimizer_, lr);
    TokenTensors batch = batches_.Next(device_);
    if (group_ != nullptr) {
      const int64_t first = group_->rank() * rank_batch_size_;
      batch.inputs = batch.inputs.narrow(0, first, rank_batch_size_);
      batch.targets = batch.targets.narrow(0, first, rank_batch_size_);
    }
    optimizer_->zero_grad();
    const int64_t n_micro = rank_batch_size_ / micro_batch_size_;
    double loss_value = 0;
    for (int64_t micro_idx = 0; micro_idx < n_micro; ++micro_idx) {
      torch::Tensor inputs =
          batch.inputs.narrow(0, micro_idx * micro_batch_size_, micro_batch_size_);
      torch::Tensor targets =
          batch.targets.narrow(0, micro_idx * micro_batch_size_, micro_batch_size_);
      torch::Tensor loss;
      {
        AutocastScope autocast(plan_.bf16);
        loss = layerskip_ == nullptr ? model_.Loss(inputs, targets)
                                     : transformer_->LayerSkipLoss(inputs, targets, *layerskip_,
                                                                   step_idx, plan_.steps);
      }
      if (n_micro > 1) loss = loss / static_cast<double>(n_micro);
      loss_value += loss.item<double>();
      loss.backward();
    }
    if (group_ != nullptr) {
      group_->AverageGradients(parameters_);
      loss_value = group_->Average(loss_value);
    }
    if (absl::Status status = divergence_.Observe(step, loss_value); !status.ok()) return status;
    torch::nn::utils::clip_grad_norm_(parameters_, plan_.grad_clip);
    optimizer_->step();
    return loss_value;
  }

  // By steps or by time, whichever comes first; never at the last step, which final.pt covers.
  bool CheckpointDue(int64_t step) const {
    if (context_.spec.checkpoint_dir().empty() || step == plan_.steps) return false;
    if (plan_.checkpoint_every_steps > 0 && step % plan_.checkpoint_every_steps == 0) return true;
    return plan_.checkpoint_every_s > 0 &&
           SecondsSince(last_checkpoint_) >= plan_.checkpoint_every_s;
  }

  // True on every rank when any rank was asked to stop (model/loops/loop.h).
  bool PreemptionAgreed() {
    const bool requested = PreemptionRequested();
    if (group_ == nullptr) return requested;
    return group_->Max(requested ? 1 : 0) > 0;
  }

  // Stops after `step`: its checkpoint (rank 0, when the run has a checkpoint_dir and did not
  // just write one), the record of the tokens trained, and kCancelled.
  absl::Status Preempt(int64_t step) {
    if (reports_ && !context_.spec.checkpoint_dir().empty() && saved_step_ != step) {
      if (absl::Status status = SaveCheckpoint(step); !status.ok()) return status;
    }
    if (reports_) ReportRecord(step * plan_.batch_tokens);
    return absl::CancelledError(absl::StrCat("preempted at step ", step, " of ", plan_.steps,
                                             context_.spec.checkpoint_dir().empty()
                                                 ? " (no checkpoint_dir: nothing saved)"
                                                 : "; checkpoint written"));
  }

  absl::Status SaveCheckpoint(int64_t step) {
    saved_step_ = step;
    LoopCounters counters;
    counters.step = step;
    counters.data_position = batches_.position();
    counters.divergence = divergence_.state();
    counters.interval_loss_sum = interval_.loss_sum;
    counters.interval_steps = interval_.steps;
    counters.interval_train_s = interval_.train_s;
    counters.final_train_loss = summary_.final_train_loss;
    counters.final_val_loss = summary_.final_val_loss;
    const std::string& dir = context_.spec.checkpoint_dir();
    absl::StatusOr<std::string> path = SaveTrainState(dir, model_, *optimizer_, counters);
    if (!path.ok()) return path.status();
    context_.sink.WriteArtifact(ArtifactRecord{"checkpoint", *path, step});
    last_checkpoint_ = Clock::now();
    return PruneCheckpoints(dir, plan_.checkpoint_keep);
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
    // Before val_loss, so val_loss stays the last metric of an evaluation.
    for (const BucketLoss& bucket : validation.position_buckets) {
      Emit(step, absl::StrCat("val_loss_pos/", bucket.first, "-", bucket.last), bucket.loss);
    }
    Emit(step, "val_loss", validation.mixture_loss);
    return validation;
  }

  absl::StatusOr<TrainSummary> Finish() {
    summary_.tokens = plan_.steps * plan_.batch_tokens;
    ReportRecord(summary_.tokens);
    summary_.train_tokens_per_s =
        static_cast<double>((plan_.steps - first_step_) * plan_.batch_tokens) / total_train_s_;
    if (!reports_) {
      summary_.wall_time_s = SecondsSince(context_.start);
      return summary_;
    }
    // Associative recall at eval.recall_lengths, once, on the final weights.
    absl::StatusOr<std::vector<std::pair<std::string, double>>> recall =
        RecallMetrics(model_, plan_, context_.spec.config().model().vocab_size());
    if (!recall.ok()) return recall.status();
    for (const auto& [name, value] : *recall) Emit(plan_.steps, name, value);
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
  LrScheduleSpec lr_spec_;
  DivergenceDetector divergence_;
  DataParallelGroup* group_;  // null: one process
  int64_t rank_batch_size_;   // Windows this rank trains on per step (all of them alone).
  int64_t micro_batch_size_;
  bool reports_;  // Rank 0 (or the only rank): validates, reports, checkpoints, saves weights.
  const scalelab::v1::LayerSkipSpec* layerskip_ = nullptr;  // Set when train.layerskip is on.
  TransformerImpl* transformer_ = nullptr;                  // model_, when layerskip_ is set.
  const int64_t report_every_ = std::max<int64_t>(1, plan_.steps / 100);
  int64_t first_step_ = 0;  // Steps completed before this call: the resumed checkpoint's.
  Clock::time_point last_checkpoint_;
  int64_t saved_step_ = -1;  // the step of the checkpoint this call wrote last
  Interval interval_;
  double total_train_s_ = 0;
  TrainSummary summary_;
};

}  // namespace

absl::StatusOr<TrainSummary> RunPretrainLoop(const LoopContext& context) {
  absl::StatusOr<std::vector<SourceData>> sources = LoadSources(
      context.plan.sources, context.plan.seq_len, context.spec.config().model().vocab_size());
  if (!sources.ok()) return sources.status();
  PretrainLoop loop(context, *std::move(sources));
  return loop.Execute();
}

}  // namespace scalelab::model
