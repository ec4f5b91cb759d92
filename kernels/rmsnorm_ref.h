// CPU references for the RMSNorm kernels (kernels/rmsnorm.cuh): plain C++, no CUDA, accumulating
// in double, so they build and are tested everywhere and are what the GPU results are checked
// against.

#ifndef SCALELAB_KERNELS_RMSNORM_REF_H_
#define SCALELAB_KERNELS_RMSNORM_REF_H_

namespace scalelab::kernels {

// rstd[row] = 1 / sqrt(mean(x[row, :]^2) + eps); out[row, col] = x[row, col] * rstd * weight[col].
// Row-major, contiguous; rstd may be null. rows >= 0, cols >= 1.
void RmsNormForwardRef(float* out, float* rstd, const float* x, const float* weight, int rows,
                       int cols, float eps);

// dx and dweight (overwritten) of RmsNormForwardRef for upstream gradient dout; the formulas are
// in kernels/rmsnorm.cuh. rstd is recomputed from x here (in double), so eps is needed instead.
// dweight may be null.
void RmsNormBackwardRef(float* dx, float* dweight, const float* dout, const float* x,
                        const float* weight, int rows, int cols, float eps);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_RMSNORM_REF_H_
