// Fused softmax cross-entropy, forward and backward in one kernel (as llm.c's
// fused_classifier): per row of logits, one read pass keeps an online log-sum-exp (running max
// and the sum of exp rescaled whenever the max grows, Milakov & Gimelshein 2018), then one
// read-write pass writes the gradient. The probabilities are never stored. The math of
// CrossEntropyRef in kernels/cross_entropy_ref.h, its CPU reference.

#ifndef SCALELAB_KERNELS_CROSS_ENTROPY_CUH_
#define SCALELAB_KERNELS_CROSS_ENTROPY_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace scalelab::kernels {

// For each row r of logits [rows, vocab] with target t = targets[r]:
//   lse      = log(sum_j exp(logits[r, j]))
//   loss[r]  = lse - logits[r, t]                                   (fp32, nats; unreduced)
//   dlogits[r, j] = (exp(logits[r, j] - lse) - [j == t]) * dloss[0] * grad_scale
// where dloss points to one fp32 on the device (the upstream gradient of the reduced loss) and
// grad_scale is 1/rows for a mean. dlogits and dloss may both be null for the forward only;
// dlogits may alias logits (the gradient then overwrites them). A target outside [0, vocab)
// gives loss NaN (the kernel cannot report errors; NaN is what training notices).
// rows >= 0, vocab >= 1; device pointers; aborts with file:line on a bad shape or launch error.
void CrossEntropyForwardBackward(float* loss, float* dlogits, const float* logits,
                                 const int64_t* targets, const float* dloss, float grad_scale,
                                 int rows, int vocab, cudaStream_t stream);
// The same with bf16 logits and dlogits (fp32 loss and fp32 math).
void CrossEntropyForwardBackward(float* loss, __nv_bfloat16* dlogits, const __nv_bfloat16* logits,
                                 const int64_t* targets, const float* dloss, float grad_scale,
                                 int rows, int vocab, cudaStream_t stream);

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_CROSS_ENTROPY_CUH_
