// RMSNorm forward and backward on the GPU: the math of RmsNormForwardRef / RmsNormBackwardRef in
// kernels/rmsnorm_ref.h, their CPU references (fp32 tests compare at rtol 1e-4).
//
// One warp per row: lanes stride over the columns and reduce with warp shuffles. Statistics and
// sums are always accumulated in fp32, also for bf16 tensors.
// dweight is reduced deterministically (per-chunk partial sums, then a fixed-order sum over
// chunks) so that two identical runs give identical gradients.

#ifndef SCALELAB_KERNELS_RMSNORM_CUH_
#define SCALELAB_KERNELS_RMSNORM_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace scalelab::kernels {

// Enqueues, for `rows` contiguous rows of `cols` values on `stream`:
//   rstd[row] = 1 / sqrt(mean(x[row, :]^2) + eps),  out[row, col] = x[row, col] * rstd *
//   weight[col].
// All pointers are device memory: x and out [rows, cols], weight [cols], rstd [rows] (fp32) or
// null when not wanted. `out` may alias `x`. rows >= 0, cols >= 1; a bad shape is a caller bug
// and aborts with file:line, as does a launch error (SCALELAB_CUDA_CHECK).
void RmsNormForward(float* out, float* rstd, const float* x, const float* weight, int rows,
                    int cols, float eps, cudaStream_t stream);
// The same with bf16 x, weight and out (fp32 statistics).
void RmsNormForward(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* x,
                    const __nv_bfloat16* weight, int rows, int cols, float eps,
                    cudaStream_t stream);

// Gradients of RmsNormForward given dout [rows, cols] and the forward's rstd [rows]:
//   dx[row, j]   = rstd * (weight[j] * dout[row, j]
//                          - x[row, j] * rstd^2 / cols * sum_k dout[row, k] * weight[k] * x[row,
//                          k])
//   dweight[j]   = sum_row dout[row, j] * x[row, j] * rstd[row]   (overwritten, not accumulated)
// dx may alias dout; dweight may be null when not wanted. Uses a temporary of
// ceil(rows / 256) * cols floats from cudaMallocAsync on `stream`.
void RmsNormBackward(float* dx, float* dweight, const float* dout, const float* x,
                     const float* weight, const float* rstd, int rows, int cols,
                     cudaStream_t stream);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_RMSNORM_CUH_
