// LayerNorm forward on the GPU, fp32: the same math as LayerNormForwardRef in
// kernels/layernorm_ref.h, which is its CPU reference (tests compare at rtol 1e-4).
//
// One warp normalizes one row: lanes stride over the columns, reduce with warp shuffles (no
// shared memory, no block-level synchronization), and compute mean then variance in two passes
// over the row so the variance does not suffer the cancellation of E[x^2] - E[x]^2.

#ifndef SCALELAB_KERNELS_LAYERNORM_CUH_
#define SCALELAB_KERNELS_LAYERNORM_CUH_

#include <cuda_runtime.h>

namespace scalelab::kernels {

// Enqueues LayerNorm of `rows` contiguous rows of `cols` floats on `stream`:
//   out[row, col] = (x[row, col] - mean[row]) * rstd[row] * weight[col] + bias[col]
// with the biased variance and rstd = 1 / sqrt(var + eps).
// All pointers are device memory: x and out [rows, cols], weight and bias [cols], mean and rstd
// [rows] or null when not wanted. `out` must not overlap `x`. rows >= 0, cols >= 1.
// Returns once the launch is enqueued; a launch error aborts with file:line (SCALELAB_CUDA_CHECK).
void LayerNormForward(float* out, float* mean, float* rstd, const float* x, const float* weight,
                      const float* bias, int rows, int cols, float eps, cudaStream_t stream);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_LAYERNORM_CUH_
