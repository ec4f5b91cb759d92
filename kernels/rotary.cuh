// Rotary position embedding (Su et al. 2021) on the GPU, "rotate half" layout: channel i of a head
// pairs with channel i + head_dim/2. The math of RotaryRef in kernels/rotary_ref.h, its CPU
// reference. Elementwise: one thread per channel pair, fp32 math for fp32 and bf16 storage.

#ifndef SCALELAB_KERNELS_ROTARY_CUH_
#define SCALELAB_KERNELS_ROTARY_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace scalelab::kernels {

// x and out [rows, seq, head_dim] contiguous, rows = batch * heads; cos and sin [seq, head_dim/2]
// fp32. For each row, position t and pair i < head_dim/2, with x1 = x[.., t, i] and
// x2 = x[.., t, i + head_dim/2]:
//   forward  (inverse = false): out1 = x1 cos - x2 sin, out2 = x2 cos + x1 sin
//   backward (inverse = true):  the same rotation with -sin, which is both the inverse rotation
//                               and the gradient (the rotation is orthogonal): pass dout as x.
// `out` may alias `x`. rows >= 0, seq >= 0, head_dim even and >= 2; device pointers; aborts with
// file:line on a bad shape or a launch error.
void Rotary(float* out, const float* x, const float* cos, const float* sin, int rows, int seq,
            int head_dim, bool inverse, cudaStream_t stream);
void Rotary(__nv_bfloat16* out, const __nv_bfloat16* x, const float* cos, const float* sin,
            int rows, int seq, int head_dim, bool inverse, cudaStream_t stream);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_ROTARY_CUH_
