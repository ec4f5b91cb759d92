#include "model/parts.h"

#include <cmath>

#include "model/ops.h"

namespace scalelab::model {

void InitNormal(torch::Tensor& weight, double std) {
  torch::NoGradGuard no_grad;
  weight.normal_(0.0, std);
}

double ResidualInitStd(int64_t n_layers) {
  return kInitStd / std::sqrt(2.0 * static_cast<double>(n_layers));
}

RmsNormImpl::RmsNormImpl(int64_t d) { weight = register_parameter("weight", torch::ones({d})); }

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  return ops::RmsNorm(x, weight, /*eps=*/1e-5);
}

int64_t SwiGluHidden(const scalelab::v1::ModelSpec& spec) {
  if (spec.d_ff() > 0) return spec.d_ff();
  // ceil(8 d / 3) in integers, then up to a multiple of 8.
  const int64_t raw = (8 * static_cast<int64_t>(spec.d_model()) + 2) / 3;
  return (raw + 7) / 8 * 8;
}

SwiGluMlpImpl::SwiGluMlpImpl(int64_t d, int64_t hidden, int64_t n_layers) {
  w_gate = register_parameter("w_gate", torch::empty({hidden, d}));
  w_up = register_parameter("w_up", torch::empty({hidden, d}));
  w_down = register_parameter("w_down", torch::empty({d, hidden}));
  InitNormal(w_gate, kInitStd);
  InitNormal(w_up, kInitStd);
  InitNormal(w_down, ResidualInitStd(n_layers));
}

torch::Tensor SwiGluMlpImpl::forward(const torch::Tensor& x) {
  return ops::Linear(ops::SwiGlu(ops::Linear(x, w_gate), ops::Linear(x, w_up)), w_down);
}

}  // namespace scalelab::model
