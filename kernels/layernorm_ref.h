// CPU reference for the LayerNorm forward kernel (kernels/layernorm.cuh): plain C++, no CUDA, so
// it builds and is tested everywhere and is the ground truth the GPU result is compared with.

#ifndef SCALELAB_KERNELS_LAYERNORM_REF_H_
#define SCALELAB_KERNELS_LAYERNORM_REF_H_

namespace scalelab::kernels {

// For each of `rows` rows of `cols` floats (row-major, contiguous):
//   mean = sum(x) / cols,  var = sum((x - mean)^2) / cols  (biased, as LayerNorm uses),
//   rstd = 1 / sqrt(var + eps),
//   out[row, col] = (x[row, col] - mean) * rstd * weight[col] + bias[col].
// Accumulates in double. `mean` and `rstd` (length `rows`) may be null when not needed.
// `out` must not overlap `x`. rows >= 0, cols >= 1.
void LayerNormForwardRef(float* out, float* mean, float* rstd, const float* x, const float* weight,
                         const float* bias, int rows, int cols, float eps);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_LAYERNORM_REF_H_
