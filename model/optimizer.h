// AdamW as every training loop sets it up: betas (0.9, 0.95), weight decay on the model's
// `decay` parameter group only (CausalLM::ParameterGroups), and the learning rate set per step
// from model/lr_schedule.h.

#ifndef SCALELAB_MODEL_OPTIMIZER_H_
#define SCALELAB_MODEL_OPTIMIZER_H_

#include <torch/torch.h>

#include <memory>

#include "model/causal_lm.h"

namespace scalelab::model {

// An AdamW over every parameter of `model` at rate `lr`, with `weight_decay` on the decay group
// and none on the rest. The model must outlive the optimizer.
std::unique_ptr<torch::optim::AdamW> MakeAdamW(const CausalLM& model, double lr,
                                               double weight_decay);

// Sets the learning rate of every parameter group.
void SetLearningRate(torch::optim::AdamW& optimizer, double lr);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_OPTIMIZER_H_
