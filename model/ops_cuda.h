// The CUDA kernels of kernels/ as autograd ops on LibTorch tensors: what model/ops.cc runs for
// CUDA tensors when ops::CurrentImpl() is kFast and the *Applies predicate holds, instead of the
// eager LibTorch composition. Each forward and backward is a kernel launch on the raw data
// pointers, on the legacy default stream (nullptr): the Debian LibTorch this builds against is
// CPU-only and has no c10::cuda to ask for the current stream, and nothing in scalelab sets
// another one. Compiled only with kernels/ (nvcc found): everything here is behind
// SCALELAB_WITH_KERNELS.
//
// Dtypes: fp32 or bf16 tensors (the same for all floating inputs of an op, except the fp32
// rotary tables); the math is fp32 inside. Outputs have the input's dtype, except the loss (fp32).

#ifndef SCALELAB_MODEL_OPS_CUDA_H_
#define SCALELAB_MODEL_OPS_CUDA_H_

#ifdef SCALELAB_WITH_KERNELS

#include <torch/torch.h>

namespace scalelab::model::ops {

// x [..., d] CUDA fp32/bf16, weight [d] of x's dtype, fewer than 2^31 rows and elements per row.
bool RmsNormCudaApplies(const torch::Tensor& x, const torch::Tensor& weight);
// ops::RmsNorm on the kernels: x / sqrt(mean(x^2) + eps) * weight, differentiable in x and
// weight. The bf16 backward runs the fp32 kernel on upcast copies.
torch::Tensor RmsNormCuda(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// x [B, H, T, D] CUDA fp32/bf16 with D even; cos and sin CUDA fp32 [T, D/2].
bool RotaryCudaApplies(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
// ops::ApplyRotary on the kernel, differentiable in x (the tables are constants).
torch::Tensor RotaryCuda(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin);

// logits [N, V] CUDA fp32/bf16 with N >= 1; targets CUDA int64 [N].
bool CrossEntropyCudaApplies(const torch::Tensor& logits, const torch::Tensor& targets);
// ops::CrossEntropy (mean over rows, nats, fp32 scalar) on the fused kernel. When a gradient is
// wanted the forward already computes d(mean loss)/d(logits), held until backward scales it by
// the upstream gradient: one extra logits-sized tensor instead of a second pass. Targets must be
// in [0, V): the kernel cannot raise, an out-of-range target makes the loss NaN.
torch::Tensor CrossEntropyCuda(const torch::Tensor& logits, const torch::Tensor& targets);

// ssd::ScanChunked's inputs (model/ssd.h) that the SSD kernels take: x [B,T,H,P], dt [B,T,H],
// a [H], b and c [B,T,N] and initial_state [B,H,P,N] (or undefined), all CUDA fp32 or bf16;
// T >= 1, chunk in [1, 1024], every size below 2^31, and P * N small enough for the combine
// step's shared memory (at most 48K floats).
bool SsdScanCudaApplies(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                        const torch::Tensor& b, const torch::Tensor& c, int64_t chunk,
                        const torch::Tensor& initial_state);
// ssd::ScanChunked on kernels/ssd_scan.cuh, for inference only: no autograd (the kernels have no
// backward), fp32 math on fp32 copies. Returns y [B,T,H,P] in x's dtype; *final_state (when
// non-null) gets the fp32 state after the last token. chunk = min(chunk, T), as ScanChunked.
torch::Tensor SsdScanCuda(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                          const torch::Tensor& b, const torch::Tensor& c, int64_t chunk,
                          const torch::Tensor& initial_state, torch::Tensor* final_state);

}  // namespace scalelab::model::ops

#endif  // SCALELAB_WITH_KERNELS

#endif  // SCALELAB_MODEL_OPS_CUDA_H_
