#include "model/foreach_adamw.h"

#include <cmath>
#include <utility>

namespace scalelab::model {

ForeachAdamW::ForeachAdamW(const CausalLM& model, double lr, double weight_decay) : lr_(lr) {
  ParamGroups params = model.ParameterGroups();
  Group decay;
  decay.params = std::move(params.decay);
  decay.weight_decay = weight_decay;
  Group no_decay;
  no_decay.params = std::move(params.no_decay);
  for (Group* group : {&decay, &no_decay}) {
    if (!group->params.empty()) groups_.push_back(std::move(*group));
  }
}

void ForeachAdamW::zero_grad() {
  for (Group& group : groups_) {
    for (torch::Tensor& param : group.params) {
      if (param.mutable_grad().defined()) {
        param.mutable_grad().detach_();
        param.mutable_grad().zero_();
      }
    }
  }
}

void ForeachAdamW::step() {
  torch::NoGradGuard no_grad;
  ++steps_;
  // The order of operations of torch::optim::AdamW::step, so the two agree to rounding.
  const double bias_correction1 = 1 - std::pow(beta1_, static_cast<double>(steps_));
  const double bias_correction2 = 1 - std::pow(beta2_, static_cast<double>(steps_));
  const double step_size = lr_ / bias_correction1;
  for (Group& group : groups_) {
    std::vector<torch::Tensor> grads;
    grads.reserve(group.params.size());
    for (const torch::Tensor& param : group.params) {
      TORCH_CHECK(param.grad().defined(), "ForeachAdamW: a parameter of shape ", param.sizes(),
                  " has no gradient; every parameter must take part in the loss");
      grads.push_back(param.grad());
    }
    if (group.exp_avg.empty()) {
      for (const torch::Tensor& param : group.params) {
        group.exp_avg.push_back(torch::zeros_like(param, torch::MemoryFormat::Preserve));
        group.exp_avg_sq.push_back(torch::zeros_like(param, torch::MemoryFormat::Preserve));
      }
    }
    if (group.weight_decay != 0) at::_foreach_mul_(group.params, 1 - lr_ * group.weight_decay);
    at::_foreach_mul_(group.exp_avg, beta1_);
    at::_foreach_add_(group.exp_avg, grads, 1 - beta1_);
    at::_foreach_mul_(group.exp_avg_sq, beta2_);
    at::_foreach_addcmul_(group.exp_avg_sq, grads, grads, 1 - beta2_);
    std::vector<torch::Tensor> denom = at::_foreach_sqrt(group.exp_avg_sq);
    at::_foreach_div_(denom, std::sqrt(bias_correction2));
    at::_foreach_add_(denom, eps_);
    at::_foreach_addcdiv_(group.params, group.exp_avg, denom, -step_size);
  }
}

}  // namespace scalelab::model
