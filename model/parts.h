// Small modules shared by the model families: RMSNorm and the SwiGLU MLP. Both compute through
// model/ops.h, so fused kernels plug in there and their multiply-adds are counted.

#ifndef SCALELAB_MODEL_PARTS_H_
#define SCALELAB_MODEL_PARTS_H_

#include <torch/torch.h>

#include <cstdint>

#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

// Initial standard deviation of every weight matrix and embedding (GPT-2 / Llama practice).
inline constexpr double kInitStd = 0.02;

// Fills `weight` with N(0, std) without recording the op for autograd.
void InitNormal(torch::Tensor& weight, double std);

// The standard deviation of a residual output projection in a model of `n_layers` blocks:
// kInitStd / sqrt(2 * n_layers), so the residual stream's variance does not grow with depth.
double ResidualInitStd(int64_t n_layers);

// RMSNorm (Zhang & Sennrich 2019): x / sqrt(mean(x^2) + eps) * weight over the last dimension.
// Parameter "weight" [d], initialized to 1; eps 1e-5.
class RmsNormImpl : public torch::nn::Module {
 public:
  explicit RmsNormImpl(int64_t d);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;
};
TORCH_MODULE(RmsNorm);

// The SwiGLU hidden width of `spec`: spec.d_ff() when positive, else 8/3 * d_model rounded up to
// a multiple of 8 (d_model 64 -> 176, 128 -> 344, 256 -> 688), which keeps the parameter count
// of a 4 * d_model GELU MLP.
int64_t SwiGluHidden(const scalelab::v1::ModelSpec& spec);

// SwiGLU MLP (Shazeer 2020): w_down(silu(w_gate x) * w_up x), no biases. w_gate and w_up
// d -> hidden ~ N(0, kInitStd); w_down hidden -> d ~ N(0, ResidualInitStd(n_layers)).
class SwiGluMlpImpl : public torch::nn::Module {
 public:
  SwiGluMlpImpl(int64_t d, int64_t hidden, int64_t n_layers);
  // x [..., d] -> [..., d].
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor w_gate;  // [hidden, d]
  torch::Tensor w_up;    // [hidden, d]
  torch::Tensor w_down;  // [d, hidden]
};
TORCH_MODULE(SwiGluMlp);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_PARTS_H_
