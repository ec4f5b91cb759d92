#include "model/sft_loss.h"

#include <algorithm>
#include <numeric>

namespace scalelab::model {

SftTensors ToTensors(const SftRows& rows, const torch::Device& device) {
  const auto options = torch::TensorOptions(torch::kLong);
  SftTensors out;
  out.inputs = torch::tensor(rows.inputs, options).view({rows.rows, rows.width}).to(device);
  out.targets = torch::tensor(rows.targets, options).view({rows.rows, rows.width}).to(device);
  return out;
}

torch::Tensor MaskedCrossEntropySum(const torch::Tensor& logits, const torch::Tensor& targets) {
  const torch::Tensor flat_logits = logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32);
  const torch::Tensor flat_targets = targets.reshape({-1});
  const torch::Tensor counted = flat_targets.ne(kIgnoreTarget);
  // Ignored targets gather class 0 and are then zeroed, so no index is ever out of range.
  const torch::Tensor safe_targets = flat_targets.clamp_min(0).unsqueeze(1);
  const torch::Tensor nll = -torch::log_softmax(flat_logits, -1).gather(1, safe_targets).squeeze(1);
  return (nll * counted.to(nll.scalar_type())).sum();
}

double MeanResponseLoss(CausalLM& model, const std::vector<SftExample>& examples,
                        int64_t chunk_examples, int64_t seq_len, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double loss_sum = 0;
  int64_t loss_tokens = 0;
  std::vector<int64_t> indices(examples.size());
  std::iota(indices.begin(), indices.end(), 0);
  const int64_t total = static_cast<int64_t>(examples.size());
  for (int64_t first = 0; first < total; first += chunk_examples) {
    const int64_t count = std::min(chunk_examples, total - first);
    const SftRows rows =
        LayOutSftBatch(examples, absl::MakeConstSpan(indices).subspan(first, count), seq_len,
                       /*pack=*/false);
    const SftTensors tensors = ToTensors(rows, device);
    loss_sum +=
        MaskedCrossEntropySum(model.forward(tensors.inputs), tensors.targets).item<double>();
    loss_tokens += rows.loss_tokens;
  }
  model.train(was_training);
  return loss_tokens == 0 ? 0.0 : loss_sum / static_cast<double>(loss_tokens);
}

}  // namespace scalelab::model
