#include "model/loops/grpo_loop.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/generation.h"
#include "model/grpo.h"
#include "model/lr_schedule.h"
#include "model/optimizer.h"
#include "model/registry.h"
#include "model/task_eval.h"
#include "model/task_set.h"

namespace scalelab::model {
namespace {

using Clock = std::chrono::steady_clock;

// SplitMix64's finalizer over (seed, step): each step samples from its own stream.
uint64_t StepSeed(uint64_t seed, int64_t step) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(step + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// One sampled batch laid out for the training forward pass: row b is prompt + completion of
// completion b, right-padded; position t predicts token t + 1, and mask marks the positions
// whose target is a completion token.
struct RolloutBatch {
  torch::Tensor inputs;           // int64 [B, L - 1]
  torch::Tensor targets;          // int64 [B, L - 1]
  torch::Tensor mask;             // float [B, L - 1]
  torch::Tensor rewards;          // float [P, G]
  int64_t sequence_tokens = 0;    // real (unpadded) input tokens over the rows
  int64_t completion_tokens = 0;  // completions without stop markers
};

// What one sampling step reports.
struct StepStats {
  double reward_mean = 0;
  double zero_adv_frac = 0;
  double train_loss = 0;
  double kl = 0;
  double clip_frac = 0;
  double entropy = 0;
  double completion_len = 0;
  double lr = 0;
  double samples_per_s = 0;
};

class GrpoLoop {
 public:
  GrpoLoop(const LoopContext& context, TaskSet tasks, AdvantageMode advantage, LossNorm norm)
      : context_(context),
        grpo_(context.spec.config().grpo()),
        model_(context.model),
        device_(context.plan.cuda ? torch::kCUDA : torch::kCPU),
        tasks_(std::move(tasks)),
        advantage_(advantage),
        optimizer_(MakeAdamW(model_, context.plan.peak_lr, context.plan.weight_decay)),
        parameters_(model_.parameters()),
        lr_spec_{context.plan.schedule, context.plan.peak_lr, context.plan.warmup,
                 context.plan.decay, context.plan.final_lr},
        total_optimizer_steps_(grpo_.steps() * grpo_.passes()),
        probe_every_(context.spec.config().eval().tasks().every_steps()) {
    surrogate_.clip_low = grpo_.clip_low();
    surrogate_.clip_high = grpo_.clip_high();
    surrogate_.norm = norm;
    surrogate_.max_new_tokens = grpo_.max_new_tokens();
    surrogate_.beta = grpo_.beta();
  }

  absl::StatusOr<TrainSummary> Execute() {
    if (absl::Status status = Prepare(); !status.ok()) return status;
    if (absl::Status status = Probe(0); !status.ok()) return status;
    double train_s = 0;
    for (int64_t step = 1; step <= grpo_.steps(); ++step) {
      const Clock::time_point step_start = Clock::now();
      absl::StatusOr<StepStats> stats = TrainStep(step);
      if (!stats.ok()) {
        ReportRecord();
        return stats.status();
      }
      const double step_s = SecondsSince(step_start);
      train_s += step_s;
      stats->samples_per_s =
          static_cast<double>(grpo_.prompts_per_step() * grpo_.group_size()) / step_s;
      const int64_t optimizer_step = step * grpo_.passes();
      Report(optimizer_step, *stats);
      summary_.final_train_loss = stats->train_loss;
      const bool last = step == grpo_.steps();
      if (ProbeDue(optimizer_step) || last) {
        if (absl::Status status = Probe(optimizer_step); !status.ok()) return status;
      }
    }
    summary_.train_tokens_per_s = static_cast<double>(summary_.tokens) / train_s;
    return Finish();
  }

 private:
  absl::Status Prepare() {
    if (!context_.from_init_weights) {
      return absl::FailedPreconditionError(
          "init: a GRPO run starts from trained weights (init.from_run or init.from_artifact), "
          "but the model holds none");
    }
    if (context_.resume != nullptr) {
      return absl::FailedPreconditionError(
          "checkpoint_dir: GRPO runs do not resume from checkpoints; expected no checkpoint");
    }
    summary_.steps = total_optimizer_steps_;
    summary_.n_params = model_.NumNonEmbeddingParams();
    summary_.n_params_total = model_.NumParams();
    summary_.flops_per_token = model_.FlopsPerToken();
    if (grpo_.beta() > 0) {
      absl::Status status = BuildReference();
      if (!status.ok()) return status;
    }
    if (context_.log != nullptr) {
      *context_.log << absl::StrFormat(
                           "scalelab-train: grpo on %s | %d non-embedding params | %d steps x %d "
                           "prompts x %d samples, %d pass(es), lr=%g %s, beta=%g | %s",
                           tasks_.name(), summary_.n_params, grpo_.steps(),
                           grpo_.prompts_per_step(), grpo_.group_size(), grpo_.passes(),
                           context_.plan.peak_lr, LrScheduleName(context_.plan.schedule),
                           grpo_.beta(), device_.str())
                    << std::endl;
    }
    ReportRecord();
    return absl::OkStatus();
  }

  // A frozen copy of the starting weights for the KL term.
  absl::Status BuildReference() {
    absl::StatusOr<std::shared_ptr<CausalLM>> reference =
        BuildModel(context_.spec.config().model());
    if (!reference.ok()) return reference.status();
    reference_ = *std::move(reference);
    reference_->to(device_);
    torch::NoGradGuard no_grad;
    auto source = model_.named_parameters();
    for (auto& item : reference_->named_parameters()) {
      item.value().copy_(source[item.key()]);
      item.value().set_requires_grad(false);
    }
    auto source_buffers = model_.named_buffers();
    for (auto& item : reference_->named_buffers()) item.value().copy_(source_buffers[item.key()]);
    reference_->eval();
    return absl::OkStatus();
  }

  bool ProbeDue(int64_t optimizer_step) const {
    if (probe_every_ <= 0) return false;
    return optimizer_step / probe_every_ > (optimizer_step - grpo_.passes()) / probe_every_;
  }

  void Emit(int64_t step, const std::string& name, double value) {
    context_.sink.Write(
        Metric{step, completion_tokens_, name, value, SecondsSince(context_.start)});
  }

  void ReportRecord() {
    scalelab::v1::RunRecord record;
    record.set_family(context_.spec.config().model().family());
    record.set_n_params(summary_.n_params);
    record.set_n_params_total(summary_.n_params_total);
    record.set_flops_per_token(summary_.flops_per_token);
    record.set_tokens(static_cast<double>(summary_.tokens));
    record.set_flops(summary_.flops_per_token * static_cast<double>(summary_.tokens));
    context_.sink.WriteRecord(record);
  }

  void Report(int64_t step, const StepStats& stats) {
    Emit(step, "reward_mean", stats.reward_mean);
    Emit(step, "zero_adv_frac", stats.zero_adv_frac);
    Emit(step, "train_loss", stats.train_loss);
    Emit(step, "kl", stats.kl);
    Emit(step, "clip_frac", stats.clip_frac);
    Emit(step, "entropy", stats.entropy);
    Emit(step, "completion_len", stats.completion_len);
    Emit(step, "lr", stats.lr);
    Emit(step, "samples_per_s", stats.samples_per_s);
  }

  GenerateOptions SamplingOptions(int64_t step) const {
    GenerateOptions options;
    options.max_new_tokens = grpo_.max_new_tokens();
    options.temperature = grpo_.temperature();
    options.stop = {{static_cast<int64_t>(kEndOfResponse)}};
    options.seed = StepSeed(context_.plan.seed, step);
    return options;
  }

  // Samples the step's groups and lays them out for training.
  absl::StatusOr<RolloutBatch> Rollout(int64_t step) {
    const int64_t prompts = grpo_.prompts_per_step();
    const int64_t group = grpo_.group_size();
    absl::StatusOr<std::vector<tasks::Problem>> problems =
        tasks_.Problems(tasks::Split::kTrain, (step - 1) * prompts, prompts);
    if (!problems.ok()) return problems.status();
    std::vector<std::vector<int64_t>> prompt_tokens;
    prompt_tokens.reserve(prompts * group);
    for (const tasks::Problem& problem : *problems) {
      std::vector<int64_t> tokens = EncodeBytes(PromptText(problem));
      for (int64_t sample_idx = 0; sample_idx < group; ++sample_idx) {
        prompt_tokens.push_back(tokens);
      }
    }
    absl::StatusOr<std::vector<Generation>> generations =
        Generate(model_, prompt_tokens, SamplingOptions(step));
    if (!generations.ok()) return generations.status();

    RolloutBatch batch;
    std::vector<float> rewards(prompts * group, 0.0f);
    std::vector<std::vector<int64_t>> sequences(prompt_tokens.size());
    int64_t longest = 2;
    for (size_t row = 0; row < sequences.size(); ++row) {
      const Generation& generation = (*generations)[row];
      const tasks::Problem& problem = (*problems)[row / group];
      rewards[row] =
          tasks_.verifier().Verify(DecodeBytes(generation.tokens), problem.answer).correct ? 1.0f
                                                                                           : 0.0f;
      batch.completion_tokens += static_cast<int64_t>(generation.tokens.size());
      std::vector<int64_t>& sequence = sequences[row];
      sequence = prompt_tokens[row];
      sequence.insert(sequence.end(), generation.tokens.begin(), generation.tokens.end());
      if (generation.finish_reason == FinishReason::kStop) sequence.push_back(kEndOfResponse);
      longest = std::max<int64_t>(longest, static_cast<int64_t>(sequence.size()));
    }
    const int64_t rows = static_cast<int64_t>(sequences.size());
    const int64_t width = longest - 1;
    torch::Tensor inputs = torch::zeros({rows, width}, torch::kInt64);
    torch::Tensor targets = torch::zeros({rows, width}, torch::kInt64);
    torch::Tensor mask = torch::zeros({rows, width}, torch::kFloat32);
    auto inputs_at = inputs.accessor<int64_t, 2>();
    auto targets_at = targets.accessor<int64_t, 2>();
    auto mask_at = mask.accessor<float, 2>();
    for (int64_t row = 0; row < rows; ++row) {
      const std::vector<int64_t>& sequence = sequences[row];
      const int64_t prompt_length = static_cast<int64_t>(prompt_tokens[row].size());
      const int64_t length = static_cast<int64_t>(sequence.size());
      for (int64_t position = 0; position + 1 < length; ++position) {
        inputs_at[row][position] = sequence[position];
        targets_at[row][position] = sequence[position + 1];
        mask_at[row][position] = position + 1 >= prompt_length ? 1.0f : 0.0f;
      }
      batch.sequence_tokens += length - 1;
    }
    batch.inputs = inputs.to(device_);
    batch.targets = targets.to(device_);
    batch.mask = mask.to(device_);
    batch.rewards = torch::from_blob(rewards.data(), {prompts, group}, torch::kFloat32).clone();
    return batch;
  }

  // The forward pass, in bf16 autocast when train.precision says so (CUDA only; runspec refuses
  // bf16 without GPUs). The logits are cast to fp32 by TokenLogProbs.
  torch::Tensor Forward(CausalLM& model, const torch::Tensor& inputs) {
    std::optional<CudaAutocast> autocast;
    if (context_.plan.bf16) autocast.emplace(torch::kBFloat16);
    return model.forward(inputs);
  }

  torch::Tensor LogProbs(CausalLM& model, const RolloutBatch& batch) {
    return TokenLogProbs(Forward(model, batch.inputs), batch.targets, grpo_.temperature());
  }

  absl::StatusOr<StepStats> TrainStep(int64_t step) {
    absl::StatusOr<RolloutBatch> rollout = Rollout(step);
    if (!rollout.ok()) return rollout.status();
    const RolloutBatch& batch = *rollout;
    const int64_t rows = batch.inputs.size(0);
    completion_tokens_ += batch.completion_tokens;
    summary_.tokens += batch.sequence_tokens * grpo_.passes();

    StepStats stats;
    stats.reward_mean = batch.rewards.mean().item<double>();
    stats.zero_adv_frac = static_cast<double>(CountZeroAdvantageGroups(batch.rewards)) /
                          static_cast<double>(grpo_.prompts_per_step());
    stats.completion_len = static_cast<double>(batch.completion_tokens) / static_cast<double>(rows);
    const torch::Tensor advantages =
        GroupAdvantages(batch.rewards, advantage_, grpo_.eps()).reshape({-1}).to(device_);

    torch::Tensor old_logprobs;
    torch::Tensor ref_logprobs;
    {
      torch::NoGradGuard no_grad;
      if (grpo_.passes() > 1) old_logprobs = LogProbs(model_, batch);
      if (reference_ != nullptr) ref_logprobs = LogProbs(*reference_, batch);
    }
    model_.train();
    for (int64_t pass_idx = 0; pass_idx < grpo_.passes(); ++pass_idx) {
      const int64_t optimizer_idx = (step - 1) * grpo_.passes() + pass_idx;
      stats.lr = LearningRateAt(optimizer_idx, total_optimizer_steps_, lr_spec_);
      SetLearningRate(*optimizer_, stats.lr);
      optimizer_->zero_grad();
      const torch::Tensor logits = Forward(model_, batch.inputs);
      const torch::Tensor logprobs = TokenLogProbs(logits, batch.targets, grpo_.temperature());
      if (pass_idx == 0) {
        torch::NoGradGuard no_grad;
        stats.entropy = MaskedMean(TokenEntropy(logits.detach(), grpo_.temperature()), batch.mask);
        if (grpo_.passes() == 1) old_logprobs = logprobs.detach();
      }
      SurrogateLoss loss = ClippedSurrogate(logprobs, old_logprobs, advantages, batch.mask,
                                            ref_logprobs, surrogate_);
      const double loss_value = loss.loss.item<double>();
      if (!std::isfinite(loss_value)) {
        Emit(optimizer_idx + 1, "diverged_step", static_cast<double>(optimizer_idx + 1));
        return absl::AbortedError(absl::StrCat("training diverged at step ", optimizer_idx + 1,
                                               ": the GRPO loss is ", loss_value));
      }
      loss.loss.backward();
      torch::nn::utils::clip_grad_norm_(parameters_, context_.plan.grad_clip);
      optimizer_->step();
      stats.train_loss += loss_value / static_cast<double>(grpo_.passes());
      stats.clip_frac += loss.clip_frac / static_cast<double>(grpo_.passes());
      stats.kl += loss.kl / static_cast<double>(grpo_.passes());
    }
    return stats;
  }

  // Greedy pass@1 on the probe problems.
  absl::Status Probe(int64_t optimizer_step) {
    absl::StatusOr<std::vector<tasks::Problem>> problems =
        tasks_.Problems(tasks::Split::kTest, 0, grpo_.probe_problems());
    if (!problems.ok()) return problems.status();
    std::vector<std::vector<int64_t>> prompts;
    prompts.reserve(problems->size());
    for (const tasks::Problem& problem : *problems) {
      prompts.push_back(EncodeBytes(PromptText(problem)));
    }
    GenerateOptions options;
    options.max_new_tokens = grpo_.max_new_tokens();
    options.temperature = 0;
    options.stop = {{static_cast<int64_t>(kEndOfResponse)}};
    absl::StatusOr<std::vector<Generation>> generations = Generate(model_, prompts, options);
    if (!generations.ok()) return generations.status();
    int64_t correct = 0;
    for (size_t idx = 0; idx < problems->size(); ++idx) {
      const std::string response = DecodeBytes((*generations)[idx].tokens);
      if (tasks_.verifier().Verify(response, (*problems)[idx].answer).correct) ++correct;
    }
    probe_pass_at_1_ = static_cast<double>(correct) / static_cast<double>(problems->size());
    Emit(optimizer_step, "probe_pass@1", probe_pass_at_1_);
    return absl::OkStatus();
  }

  absl::StatusOr<TrainSummary> Finish() {
    ReportRecord();
    // Pass@k on eval.tasks (the test split of grpo.tasks unless it names another set).
    absl::StatusOr<TaskEvalSummary> evaluation =
        EvaluateTasks(model_, context_.spec.config().eval().tasks(), &tasks_,
                      total_optimizer_steps_, context_.plan.seed, context_.sink);
    if (!evaluation.ok()) return evaluation.status();
    absl::StatusOr<std::string> weights =
        SaveFinalWeights(model_, context_.spec.output_dir(), total_optimizer_steps_, context_.sink);
    if (!weights.ok()) return weights.status();
    summary_.final_weights = *std::move(weights);
    summary_.wall_time_s = SecondsSince(context_.start);
    if (context_.log != nullptr) {
      *context_.log << absl::StrFormat(
                           "scalelab-train: grpo done %d steps in %.1f s; train_loss=%.4f "
                           "probe_pass@1=%.3f",
                           total_optimizer_steps_, summary_.wall_time_s, summary_.final_train_loss,
                           probe_pass_at_1_)
                    << std::endl;
    }
    return summary_;
  }

  const LoopContext& context_;
  const scalelab::v1::GrpoSpec& grpo_;
  CausalLM& model_;
  torch::Device device_;
  TaskSet tasks_;
  AdvantageMode advantage_;
  SurrogateOptions surrogate_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<torch::Tensor> parameters_;
  LrScheduleSpec lr_spec_;
  const int64_t total_optimizer_steps_;
  const int64_t probe_every_;
  std::shared_ptr<CausalLM> reference_;  // Only when beta > 0.
  int64_t completion_tokens_ = 0;
  double probe_pass_at_1_ = 0;
  TrainSummary summary_;
};

}  // namespace

absl::StatusOr<TrainSummary> RunGrpoLoop(const LoopContext& context) {
  const scalelab::v1::GrpoSpec& grpo = context.spec.config().grpo();
  absl::StatusOr<AdvantageMode> advantage = ParseAdvantageMode(grpo.advantage());
  if (!advantage.ok()) return advantage.status();
  absl::StatusOr<LossNorm> norm = ParseLossNorm(grpo.loss_norm());
  if (!norm.ok()) return norm.status();
  absl::StatusOr<TaskSet> tasks = TaskSet::Open(grpo.tasks());
  if (!tasks.ok()) return tasks.status();
  GrpoLoop loop(context, *std::move(tasks), *advantage, *norm);
  return loop.Execute();
}

}  // namespace scalelab::model
