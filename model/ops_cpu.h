// Fused CPU implementations of the ops in model/ops.h, each a torch::autograd::Function with a
// hand-written backward: one pass over memory per row where LibTorch's eager composition makes
// several, and at::parallel_for over rows (or heads) within at::get_num_threads().
//
// Internal to model/: call them through model/ops.h, which sends only CPU fp32 tensors here (the
// preconditions below) and falls back to ops::reference for everything else. Every function
// makes its inputs contiguous (a copy only where they are not).
//
// Thread-safe as LibTorch ops are: no shared state.

#ifndef SCALELAB_MODEL_OPS_CPU_H_
#define SCALELAB_MODEL_OPS_CPU_H_

#include <torch/torch.h>

#include <cstdint>

namespace scalelab::model::ops::cpu {

// x [..., in] @ weight [out, in]^T, fp32, no bias. Backward: dx and dweight, each computed only
// when needed.
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& weight);

// x [..., d], weight [d]; both fp32 on the CPU. Backward: dx and dweight.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// x [B, H, T, hd] fp32, hd even; cos and sin [T, hd/2] fp32 without gradients (tables).
// Backward: dx only.
torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);

// As ops::CausalAttention, fp32. Grouped-query heads are read by index (q viewed as
// [B * Hkv, G * T, hd] against k, v [B * Hkv, S, hd]), never copied. Scores come from batched
// BLAS products; scale, causal mask and softmax are one fused pass per row that leaves the
// masked entries exactly zero. Saves the probabilities [B, H, T, S] for the backward (what the
// eager composition also keeps, without its scores, mask and repeated k, v).
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past);

// silu(gate) * up, gate and up of equal shape, fp32.
torch::Tensor SwiGlu(const torch::Tensor& gate, const torch::Tensor& up);

// Mean cross-entropy of logits [N, V] fp32 against int64 targets [N], every target in [0, V).
// Saves only the log-sum-exp per row; the backward recomputes softmax - onehot from it.
torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace scalelab::model::ops::cpu

#endif  // SCALELAB_MODEL_OPS_CPU_H_
