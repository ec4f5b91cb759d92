#include "model/evaluation.h"

#include <algorithm>

namespace scalelab::model {

Evaluator::Evaluator(const std::vector<SourceData>& sources, int64_t seq_len, int64_t val_windows,
                     int64_t chunk_windows, const torch::Device& device)
    : chunk_windows_(std::max<int64_t>(1, chunk_windows)) {
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
  for (const ValidationSet& set : sets_) {
    const double loss = SourceLossOf(model, set);
    result.per_source.push_back(SourceLoss{set.name, loss});
    result.mixture_loss += set.weight * loss;
  }
  model.train(was_training);
  return result;
}

double Evaluator::SourceLossOf(CausalLM& model, const ValidationSet& set) const {
  const int64_t windows = set.windows.inputs.size(0);
  double loss_sum = 0;
  for (int64_t first = 0; first < windows; first += chunk_windows_) {
    const int64_t count = std::min(chunk_windows_, windows - first);
    torch::Tensor loss = model.Loss(set.windows.inputs.narrow(0, first, count),
                                    set.windows.targets.narrow(0, first, count));
    loss_sum += loss.item<double>() * static_cast<double>(count);
  }
  return loss_sum / static_cast<double>(windows);
}

}  // namespace scalelab::model
