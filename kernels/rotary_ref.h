// CPU reference for the rotary-embedding kernel (kernels/rotary.cuh): plain C++, no CUDA.

#ifndef SCALELAB_KERNELS_ROTARY_REF_H_
#define SCALELAB_KERNELS_ROTARY_REF_H_

namespace scalelab::kernels {

// The rotation of kernels/rotary.cuh (same layout, same `inverse` meaning), computed in double.
// `out` may alias `x`.
void RotaryRef(float* out, const float* x, const float* cos, const float* sin, int rows, int seq,
               int head_dim, bool inverse);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_ROTARY_REF_H_
