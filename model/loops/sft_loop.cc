#include "model/loops/sft_loop.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/loops/divergence.h"
#include "model/lr_schedule.h"
#include "model/optimizer.h"
#include "model/sft_data.h"
#include "model/sft_loss.h"
#include "model/task_eval.h"
#include "model/task_set.h"

namespace scalelab::model {
namespace {

using Clock = std::chrono::steady_clock;

struct SftInterval {
  double loss_sum = 0;
  int64_t steps = 0;
  int64_t tokens = 0;
  double train_s = 0;
};

// The examples of a run, checked: none left after the length filter is the user's error.
absl::StatusOr<SftExampleSet> ExamplesOf(const TaskSet& tasks, const scalelab::v1::SftSpec& sft,
                                         tasks::Split split, int64_t count, const char* what) {
  absl::StatusOr<SftExampleSet> set = BuildSftExamples(
      tasks, split, count, sft.use_solution(), sft.min_example_tokens(), sft.max_example_tokens());
  if (!set.ok()) {
    return absl::Status(set.status().code(), absl::StrCat("sft.tasks: ", set.status().message()));
  }
  if (set->examples.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sft.min_example_tokens, sft.max_example_tokens: expected some of the %d %s examples "
        "within [%d, %d] prompt + response tokens, got none (%d shorter, %d longer)",
        set->drawn, what, sft.min_example_tokens(), sft.max_example_tokens(), set->dropped_short,
        set->dropped_long));
  }
  return set;
}

class SftLoop {
 public:
  SftLoop(const LoopContext& context, TaskSet tasks, SftExampleSet train, SftExampleSet held_out)
      : context_(context),
        plan_(context.plan),
        sft_(context.spec.config().sft()),
        model_(context.model),
        device_(plan_.cuda ? torch::kCUDA : torch::kCPU),
        tasks_(std::move(tasks)),
        train_(std::move(train)),
        held_out_(std::move(held_out)),
        order_(SftExampleOrder(static_cast<int64_t>(train_.examples.size()), sft_.epochs(),
                               plan_.seed)),
        batch_examples_(sft_.batch_examples()),
        steps_((static_cast<int64_t>(order_.size()) + batch_examples_ - 1) / batch_examples_),
        optimizer_(MakeAdamW(model_, plan_.peak_lr, plan_.weight_decay)),
        parameters_(model_.parameters()),
        lr_spec_{plan_.schedule, plan_.peak_lr, plan_.warmup, plan_.decay, plan_.final_lr},
        // Only a loss that is not finite stops an SFT run: response-token losses approach 0 on
        // easy tasks, where train.divergence_factor x the best smoothed loss would fire on the
        // noise of one batch.
        divergence_(std::numeric_limits<double>::infinity(), 0) {
    // Example tokens trained after each step, for Metric.tokens and the run record.
    tokens_after_.assign(static_cast<size_t>(steps_ + 1), 0);
    for (size_t position = 0; position < order_.size(); ++position) {
      const int64_t step = static_cast<int64_t>(position) / batch_examples_ + 1;
      tokens_after_[static_cast<size_t>(step)] += static_cast<int64_t>(
          train_.examples[static_cast<size_t>(order_[position])].tokens.size());
    }
    for (size_t step = 1; step < tokens_after_.size(); ++step) {
      tokens_after_[step] += tokens_after_[step - 1];
    }
  }

  absl::StatusOr<TrainSummary> Execute() {
    if (order_.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sft.epochs: expected unique examples (", train_.examples.size(),
                       ") x epochs (", sft_.epochs(), ") to round to at least one example, got 0"));
    }
    if (context_.resume != nullptr) {
      if (absl::Status status = Resume(*context_.resume); !status.ok()) return status;
    }
    ReportStart();
    if (first_step_ == 0) {
      GenLoss(0);
      if (context_.from_init_weights) {
        if (absl::Status status = EvaluatePassAtK(0); !status.ok()) return status;
      }
    }
    last_checkpoint_ = Clock::now();
    const int64_t eval_every = sft_.eval_every_steps();
    const int64_t tasks_every = context_.spec.config().eval().tasks().every_steps();
    for (int64_t step_idx = first_step_; step_idx < steps_; ++step_idx) {
      const Clock::time_point step_start = Clock::now();
      const double lr = LearningRateAt(step_idx, steps_, lr_spec_);
      const int64_t step = step_idx + 1;
      absl::StatusOr<double> loss = TrainStep(step_idx, lr);
      if (!loss.ok()) {
        if (absl::IsAborted(loss.status())) Emit(step, "diverged_step", static_cast<double>(step));
        ReportRecord(TokensAfter(step_idx));
        return loss.status();
      }
      interval_.loss_sum += *loss;
      ++interval_.steps;
      interval_.tokens += TokensAfter(step) - TokensAfter(step_idx);
      interval_.train_s += SecondsSince(step_start);

      const bool last = step == steps_;
      if (step % report_every_ == 0 || last) ReportTraining(step, lr);
      if ((eval_every > 0 && step % eval_every == 0) || last) GenLoss(step);
      if ((tasks_every > 0 && step % tasks_every == 0) || last) {
        if (absl::Status status = EvaluatePassAtK(step); !status.ok()) return status;
      }
      if (CheckpointDue(step)) {
        if (absl::Status status = SaveCheckpoint(step); !status.ok()) return status;
      }
      if (!last && PreemptionRequested()) return Preempt(step);
    }
    return Finish();
  }

 private:
  int64_t TokensAfter(int64_t step) const { return tokens_after_[static_cast<size_t>(step)]; }

  void Emit(int64_t step, const std::string& name, double value) {
    context_.sink.Write(Metric{step, TokensAfter(step), name, value, SecondsSince(context_.start)});
  }

  absl::Status Resume(SavedTrainState& saved) {
    const LoopCounters& counters = saved.counters();
    if (counters.step <= 0 || counters.step >= steps_ ||
        counters.data_position != counters.step * batch_examples_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint ", saved.path(), ": step ", counters.step, " at example ",
          counters.data_position, "; expected a step between 1 and ", steps_ - 1,
          " of this SFT run at example step x sft.batch_examples (", batch_examples_, ")"));
    }
    if (absl::Status status = saved.Restore(model_, *optimizer_); !status.ok()) return status;
    first_step_ = counters.step;
    divergence_.Restore(counters.divergence);
    interval_ = SftInterval{counters.interval_loss_sum, counters.interval_steps, 0,
                            counters.interval_train_s};
    interval_.tokens = TokensAfter(first_step_) - TokensAfter(first_step_ - interval_.steps);
    summary_.final_train_loss = counters.final_train_loss;
    summary_.final_val_loss = counters.final_val_loss;
    if (context_.log != nullptr) {
      *context_.log << "scalelab-train: resumed from step " << first_step_ << " (" << saved.path()
                    << ")" << std::endl;
    }
    return absl::OkStatus();
  }

  void ReportStart() {
    summary_.steps = steps_;
    summary_.n_params = model_.NumNonEmbeddingParams();
    summary_.n_params_total = model_.NumParams();
    summary_.flops_per_token = model_.FlopsPerToken();
    if (context_.log != nullptr) {
      *context_.log << absl::StrFormat(
                           "scalelab-train: SFT on %s | %s | %d non-embedding params | %d "
                           "examples (%d drawn, %d dropped shorter than %d, %d longer than %d) x "
                           "%g epochs = %d examples in %d steps of %d%s | gen_loss on %d held-out "
                           "examples (%d dropped) | lr=%g %s | %s, %d thread(s)",
                           tasks_.name(), context_.spec.config().model().ShortDebugString(),
                           summary_.n_params, train_.examples.size(), train_.drawn,
                           train_.dropped_short, sft_.min_example_tokens(), train_.dropped_long,
                           sft_.max_example_tokens(), sft_.epochs(), order_.size(), steps_,
                           batch_examples_, sft_.pack() ? " (packed)" : "",
                           held_out_.examples.size(),
                           held_out_.dropped_short + held_out_.dropped_long, plan_.peak_lr,
                           LrScheduleName(plan_.schedule), device_.str(), plan_.threads)
                    << std::endl;
    }
    ReportRecord(TokensAfter(first_step_));
  }

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

  // One optimizer step on the examples at order positions step_idx * batch .. + batch - 1.
  // Returns the batch's mean response-token loss, or kAborted before the weights change.
  absl::StatusOr<double> TrainStep(int64_t step_idx, double lr) {
    SetLearningRate(*optimizer_, lr);
    const int64_t first = step_idx * batch_examples_;
    const int64_t count = std::min<int64_t>(batch_examples_, order_.size() - first);
    const SftRows rows =
        LayOutSftBatch(train_.examples, absl::MakeConstSpan(order_).subspan(first, count),
                       plan_.seq_len, sft_.pack());
    const SftTensors tensors = ToTensors(rows, device_);
    optimizer_->zero_grad();
    torch::Tensor loss;
    {
      std::optional<CudaAutocast> autocast;
      if (plan_.bf16) autocast.emplace(torch::kBFloat16);
      loss = MaskedCrossEntropySum(model_.forward(tensors.inputs), tensors.targets);
    }
    // Every example has at least one response token (the end marker), so the count is > 0.
    loss = loss / static_cast<double>(rows.loss_tokens);
    const double loss_value = loss.item<double>();
    if (absl::Status status = divergence_.Observe(step_idx + 1, loss_value); !status.ok()) {
      return status;
    }
    loss.backward();
    torch::nn::utils::clip_grad_norm_(parameters_, plan_.grad_clip);
    optimizer_->step();
    return loss_value;
  }

  void ReportTraining(int64_t step, double lr) {
    summary_.final_train_loss = interval_.loss_sum / static_cast<double>(interval_.steps);
    total_train_s_ += interval_.train_s;
    Emit(step, "train_loss", summary_.final_train_loss);
    Emit(step, "lr", lr);
    Emit(step, "tokens_per_s", static_cast<double>(interval_.tokens) / interval_.train_s);
    interval_ = SftInterval{};
  }

  void GenLoss(int64_t step) {
    summary_.final_val_loss =
        MeanResponseLoss(model_, held_out_.examples, batch_examples_, plan_.seq_len, device_);
    Emit(step, "gen_loss", summary_.final_val_loss);
  }

  absl::Status EvaluatePassAtK(int64_t step) {
    absl::StatusOr<TaskEvalSummary> evaluated = EvaluateTasks(
        model_, context_.spec.config().eval().tasks(), &tasks_, step, plan_.seed, context_.sink);
    return evaluated.status();
  }

  bool CheckpointDue(int64_t step) const {
    if (context_.spec.checkpoint_dir().empty() || step == steps_) return false;
    if (plan_.checkpoint_every_steps > 0 && step % plan_.checkpoint_every_steps == 0) return true;
    return plan_.checkpoint_every_s > 0 &&
           SecondsSince(last_checkpoint_) >= plan_.checkpoint_every_s;
  }

  // Stops after `step` (model/loops/loop.h): its checkpoint unless just written, the record.
  absl::Status Preempt(int64_t step) {
    if (!context_.spec.checkpoint_dir().empty() && saved_step_ != step) {
      if (absl::Status status = SaveCheckpoint(step); !status.ok()) return status;
    }
    ReportRecord(TokensAfter(step));
    return absl::CancelledError(absl::StrCat("preempted at step ", step, " of ", steps_,
                                             context_.spec.checkpoint_dir().empty()
                                                 ? " (no checkpoint_dir: nothing saved)"
                                                 : "; checkpoint written"));
  }

  absl::Status SaveCheckpoint(int64_t step) {
    saved_step_ = step;
    LoopCounters counters;
    counters.step = step;
    counters.data_position = step * batch_examples_;
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

  absl::StatusOr<TrainSummary> Finish() {
    summary_.tokens = TokensAfter(steps_);
    ReportRecord(summary_.tokens);
    const int64_t trained_tokens = summary_.tokens - TokensAfter(first_step_);
    summary_.train_tokens_per_s =
        total_train_s_ > 0 ? static_cast<double>(trained_tokens) / total_train_s_ : 0.0;
    const int64_t trained_examples =
        static_cast<int64_t>(order_.size()) -
        std::min<int64_t>(order_.size(), first_step_ * batch_examples_);
    absl::StatusOr<std::string> weights =
        SaveFinalWeights(model_, context_.spec.output_dir(), steps_, context_.sink);
    if (!weights.ok()) return weights.status();
    summary_.final_weights = *std::move(weights);
    summary_.wall_time_s = SecondsSince(context_.start);
    if (context_.log != nullptr) {
      *context_.log << absl::StrFormat(
                           "scalelab-train: done %d steps, %d examples, %d tokens in %.1f s (%.1f "
                           "train examples/s, %.0f train tokens/s); train_loss=%.4f gen_loss=%.4f",
                           steps_, order_.size(), summary_.tokens, summary_.wall_time_s,
                           total_train_s_ > 0 ? trained_examples / total_train_s_ : 0.0,
                           summary_.train_tokens_per_s, summary_.final_train_loss,
                           summary_.final_val_loss)
                    << std::endl;
    }
    return summary_;
  }

  const LoopContext& context_;
  const TrainPlan& plan_;
  const scalelab::v1::SftSpec& sft_;
  CausalLM& model_;
  torch::Device device_;
  TaskSet tasks_;
  SftExampleSet train_;
  SftExampleSet held_out_;
  std::vector<int64_t> order_;  // Indices into train_.examples, in training order.
  int64_t batch_examples_;
  int64_t steps_;
  std::vector<int64_t> tokens_after_;  // [step] = example tokens trained in steps 1..step.
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> parameters_;
  LrScheduleSpec lr_spec_;
  DivergenceDetector divergence_;
  const int64_t report_every_ = std::max<int64_t>(1, steps_ / 100);
  int64_t first_step_ = 0;
  Clock::time_point last_checkpoint_;
  int64_t saved_step_ = -1;  // the step of the checkpoint this call wrote last
  SftInterval interval_;
  double total_train_s_ = 0;
  TrainSummary summary_;
};

}  // namespace

absl::StatusOr<TrainSummary> RunSftLoop(const LoopContext& context) {
  const scalelab::v1::SftSpec& sft = context.spec.config().sft();
  absl::StatusOr<TaskSet> tasks = TaskSet::Open(sft.tasks());
  if (!tasks.ok()) {
    return absl::Status(tasks.status().code(),
                        absl::StrCat("sft.tasks: ", tasks.status().message()));
  }
  absl::StatusOr<SftExampleSet> train =
      ExamplesOf(*tasks, sft, tasks::Split::kTrain, sft.unique_examples(), "train");
  if (!train.ok()) return train.status();
  absl::StatusOr<SftExampleSet> held_out =
      ExamplesOf(*tasks, sft, tasks::Split::kHeldOut, sft.held_out_examples(), "held_out");
  if (!held_out.ok()) return held_out.status();
  SftLoop loop(context, *std::move(tasks), *std::move(train), *std::move(held_out));
  return loop.Execute();
}

}  // namespace scalelab::model
