// The loss of supervised fine-tuning: cross-entropy on response tokens only (model/sft_data.h
// marks every other target kIgnoreTarget), and the generalization loss of a model on a set of
// examples.

#ifndef SCALELAB_MODEL_SFT_LOSS_H_
#define SCALELAB_MODEL_SFT_LOSS_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/causal_lm.h"
#include "model/sft_data.h"

namespace scalelab::model {

// `rows` as int64 tensors [rows, width] on `device`.
struct SftTensors {
  torch::Tensor inputs;
  torch::Tensor targets;
};
SftTensors ToTensors(const SftRows& rows, const torch::Device& device);

// Summed cross-entropy in nats of logits [B, T, V] against targets [B, T] over the targets that
// are not kIgnoreTarget (a scalar tensor, 0 when none count). Divide by the counted targets for
// the mean.
torch::Tensor MaskedCrossEntropySum(const torch::Tensor& logits, const torch::Tensor& targets);

// Mean response-token cross-entropy (nats/token, weighted by tokens) of `model` on `examples`,
// scored without gradients in eval mode (the training mode is restored), `chunk_examples`
// examples per forward pass, one per row. The generalization loss when `examples` are held out.
double MeanResponseLoss(CausalLM& model, const std::vector<SftExample>& examples,
                        int64_t chunk_examples, int64_t seq_len, const torch::Device& device);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_SFT_LOSS_H_
