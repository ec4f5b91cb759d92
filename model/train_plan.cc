#include "model/train_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace scalelab::model {

TrainPlan PlanFor(const scalelab::v1::RunSpec& spec) {
  const scalelab::v1::RunConfig& config = spec.config();
  TrainPlan plan;
  plan.seq_len = config.model().seq_len();
  plan.batch_tokens = config.train().batch_tokens();
  plan.batch_size = plan.batch_tokens / plan.seq_len;
  // Only pretraining counts its steps in tokens; the other loops count theirs (SFT from examples
  // and epochs, GRPO from grpo.steps, EVAL has none) and leave this 0.
  if (spec.kind() == scalelab::v1::RUN_KIND_PRETRAIN ||
      spec.kind() == scalelab::v1::RUN_KIND_UNSPECIFIED) {
    plan.steps = plan.batch_tokens > 0
                     ? static_cast<int64_t>(std::ceil(config.train().tokens() /
                                                      static_cast<double>(plan.batch_tokens)))
                     : 0;
  }
  plan.peak_lr = config.train().lr();
  plan.schedule = LrScheduleFromName(config.train().schedule());
  plan.warmup = config.train().warmup();
  plan.weight_decay = config.train().weight_decay();
  plan.seed = static_cast<uint64_t>(config.train().seed());
  plan.eval_every_tokens = config.eval().every_tokens();
  plan.val_windows = static_cast<int64_t>(
      std::ceil(config.eval().val_tokens() / static_cast<double>(plan.seq_len)));

  // An empty mixture means equal weights, as the proto defines it (ApplyRunDefaults fills it in,
  // but a spec without defaults must not divide by zero here).
  const auto& mixture = config.data().mixture();
  double weight_sum = 0;
  for (const auto& [name, folder] : config.data().sources()) {
    auto weight = mixture.find(name);
    const double value = mixture.empty() ? 1.0 : weight == mixture.end() ? 0.0 : weight->second;
    plan.sources.push_back(DataSource{name, folder, value});
    weight_sum += value;
  }
  std::sort(plan.sources.begin(), plan.sources.end(),
            [](const DataSource& a, const DataSource& b) { return a.name < b.name; });
  if (weight_sum > 0) {
    for (DataSource& source : plan.sources) source.weight /= weight_sum;
  }

  plan.mixture_window = config.data().mixture_window();
  // 0 means "no accumulation" and "min(4, seq_len) buckets" (runspec leaves derived defaults 0).
  const int64_t micro_tokens = config.train().micro_batch_tokens() > 0
                                   ? config.train().micro_batch_tokens()
                                   : plan.batch_tokens;
  plan.micro_batch_size = plan.seq_len > 0 ? micro_tokens / plan.seq_len : 0;
  plan.decay = config.train().decay();
  plan.final_lr = config.train().final_lr();
  plan.grad_clip = config.train().grad_clip();
  plan.bf16 = config.train().precision() == "bf16";
  plan.divergence_factor = config.train().divergence_factor();
  plan.checkpoint_every_steps = config.checkpoint().every_steps();
  plan.checkpoint_every_s = config.checkpoint().every_s();
  // Under a worker, pruning is the worker's (ExecutionSpec.worker_prunes_checkpoints).
  plan.checkpoint_keep = spec.execution().worker_prunes_checkpoints()
                             ? std::numeric_limits<int64_t>::max()
                             : config.checkpoint().keep();
  plan.position_buckets = config.eval().position_buckets() > 0 ? config.eval().position_buckets()
                                                               : std::min<int64_t>(4, plan.seq_len);
  for (int32_t length : config.eval().recall_lengths()) plan.recall_lengths.push_back(length);
  plan.recall_pairs = config.eval().recall_pairs();
  plan.recall_examples = config.eval().recall_examples();
  plan.cuda = spec.execution().device() == "cuda";
  plan.threads = spec.execution().threads();
  return plan;
}

}  // namespace scalelab::model
