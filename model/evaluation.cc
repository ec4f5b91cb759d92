#include "model/evaluation.h"

#include <algorithm>

namespace scalelab::model {

Evaluator::Evaluator(const std::vector<SourceData>& sources, int64_t seq_len, int64_t val_windows,
                     int64_t chunk_windows, const torch::Device& device, int64_t position_buckets)
    : seq_len_(seq_len),
      chunk_windows_(std::max<int64_t>(1, chunk_windows)),
      position_buckets_(std::clamp<int64_t>(position_buckets, 1, seq_len)) {
  for (const SourceData& source : sources) {
    TokenBatch windows = ValidationWindows(source.val, seq_len, 0, val_windows);
    sets_.push_back(ValidationSet{source.name, source.weight, ToTensors(windows, device)});
  }
}

Validation Evaluator::Evaluate(CausalLM& model) const {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  Validation result;
  torch::Tensor mixture_positions = torch::zeros({seq_len_}, torch::kFloat64);
  for (const ValidationSet& set : sets_) {
    const torch::Tensor positions = PositionLossOf(model, set);
    const double loss = positions.mean().item<double>();
    result.per_source.push_back(SourceLoss{set.name, loss});
    result.mixture_loss += set.weight * loss;
    mixture_positions += set.weight * positions;
  }
  if (position_buckets_ > 1) {
    for (int64_t bucket = 0; bucket < position_buckets_; ++bucket) {
      const int64_t first = bucket * seq_len_ / position_buckets_;
      const int64_t last = (bucket + 1) * seq_len_ / position_buckets_ - 1;
      const double loss = mixture_positions.slice(0, first, last + 1).mean().item<double>();
      result.position_buckets.push_back(BucketLoss{first, last, loss});
    }
  }
  model.train(was_training);
  return result;
}

torch::Tensor Evaluator::PositionLossOf(CausalLM& model, const ValidationSet& set) const {
  const int64_t windows = set.windows.inputs.size(0);
  torch::Tensor loss_sum = torch::zeros({seq_len_}, torch::kFloat64);
  for (int64_t first = 0; first < windows; first += chunk_windows_) {
    const int64_t count = std::min(chunk_windows_, windows - first);
    // Per-token cross-entropy instead of CausalLM::Loss's mean, so one forward pass yields both
    // the window mean and its split by position.
    const torch::Tensor logits =
        model.forward(set.windows.inputs.narrow(0, first, count)).to(torch::kFloat32);
    const torch::Tensor targets = set.windows.targets.narrow(0, first, count);
    const torch::Tensor token_loss =
        -torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
    loss_sum += token_loss.sum(0).to(torch::kCPU, torch::kFloat64);
  }
  return loss_sum / static_cast<double>(windows);
}

}  // namespace scalelab::model
