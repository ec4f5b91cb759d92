// AdamW with torch::optim::AdamW's update, applied to a whole parameter group at once with
// LibTorch's multi-tensor ops (at::_foreach_*): on CUDA a handful of kernel launches per group and
// step instead of about eight per parameter, which for a model of ~100 parameter tensors is most
// of the optimizer's time (the update itself reads and writes each value a few times).
//
// The same groups and hyper-parameters as MakeAdamW (model/optimizer.h): betas (0.9, 0.95),
// eps 1e-8, weight decay on the decay group only, no amsgrad. Same results as torch::optim::AdamW
// to rounding (tests/model/foreach_adamw_test.cc). Holds no checkpointable state: for benchmarks
// and experiments, not for the trainer's resumable runs.
//
// Not thread-safe; the model must outlive it. Every parameter must have a gradient at step()
// (a model whose every parameter takes part in the loss, as CausalLM's do).

#ifndef SCALELAB_MODEL_FOREACH_ADAMW_H_
#define SCALELAB_MODEL_FOREACH_ADAMW_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/causal_lm.h"

namespace scalelab::model {

class ForeachAdamW {
 public:
  ForeachAdamW(const CausalLM& model, double lr, double weight_decay);

  // Zeroes every gradient in place (as torch::optim::AdamW::zero_grad does in LibTorch 1.13).
  void zero_grad();
  // One update of every parameter from its gradient.
  void step();

 private:
  struct Group {
    std::vector<torch::Tensor> params;
    std::vector<torch::Tensor> exp_avg;     // First moments; allocated at the first step.
    std::vector<torch::Tensor> exp_avg_sq;  // Second moments.
    double weight_decay = 0;
  };
  std::vector<Group> groups_;
  double lr_;
  double beta1_ = 0.9;
  double beta2_ = 0.95;
  double eps_ = 1e-8;
  int64_t steps_ = 0;
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_FOREACH_ADAMW_H_
