#include "model/train_plan.h"

#include <algorithm>
#include <cmath>

namespace scalelab::model {

TrainPlan PlanFor(const scalelab::v1::RunSpec& spec) {
  const scalelab::v1::RunConfig& config = spec.config();
  TrainPlan plan;
  plan.seq_len = config.model().seq_len();
  plan.batch_tokens = config.train().batch_tokens();
  plan.batch_size = plan.batch_tokens / plan.seq_len;
  plan.steps = static_cast<int64_t>(
      std::ceil(config.train().tokens() / static_cast<double>(plan.batch_tokens)));
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
  for (DataSource& source : plan.sources) source.weight /= weight_sum;

  plan.cuda = spec.execution().device() == "cuda";
  plan.threads = spec.execution().threads();
  return plan;
}

}  // namespace scalelab::model
