// CPU reference for the fused cross-entropy kernel (kernels/cross_entropy.cuh): plain C++, no
// CUDA, computed in double with the same online log-sum-exp.

#ifndef SCALELAB_KERNELS_CROSS_ENTROPY_REF_H_
#define SCALELAB_KERNELS_CROSS_ENTROPY_REF_H_

#include <cstdint>

namespace scalelab::kernels {

// The loss and gradient of kernels/cross_entropy.cuh with dloss a host value; dlogits may be
// null (forward only) or alias logits. A target outside [0, vocab) gives loss NaN.
void CrossEntropyRef(float* loss, float* dlogits, const float* logits, const int64_t* targets,
                     float dloss, float grad_scale, int rows, int vocab);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_CROSS_ENTROPY_REF_H_
