#include "model/optimizer.h"

#include <utility>
#include <vector>

namespace scalelab::model {

std::unique_ptr<torch::optim::AdamW> MakeAdamW(const CausalLM& model, double lr,
                                               double weight_decay) {
  ParamGroups params = model.ParameterGroups();
  // beta2 0.95 rather than 0.999: the second-moment estimate then forgets loss spikes within
  // ~20 steps, the usual choice for Transformer pretraining.
  auto adam = torch::optim::AdamWOptions(lr).betas({0.9, 0.95}).weight_decay(weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::move(params.decay), std::make_unique<torch::optim::AdamWOptions>(adam));
  groups.emplace_back(std::move(params.no_decay),
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(adam).weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), adam);
}

void SetLearningRate(torch::optim::AdamW& optimizer, double lr) {
  for (torch::optim::OptimizerParamGroup& group : optimizer.param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }
}

}  // namespace scalelab::model
