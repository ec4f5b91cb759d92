// LayerNorm over the last dimension, dispatched to the CUDA kernel of kernels/layernorm.cuh when
// it applies and to torch::layer_norm otherwise. The kernel is used when model/ was built with
// kernels/ (SCALELAB_WITH_KERNELS) and x, weight and bias are contiguous fp32 CUDA tensors and no
// gradient is wanted (the kernel has no backward): fp32 inference on a GPU. Training, CPU tensors
// and other dtypes take torch::layer_norm, so the CPU path is the default everywhere.

#ifndef SCALELAB_MODEL_LAYER_NORM_H_
#define SCALELAB_MODEL_LAYER_NORM_H_

#include <torch/torch.h>

namespace scalelab::model {

// y = (x - mean) / sqrt(var + eps) * weight + bias over the last dimension (biased variance),
// as torch::layer_norm. weight and bias: [x.size(-1)].
torch::Tensor LayerNormForward(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, double eps);

// True when LayerNormForward would call the CUDA kernel for these arguments (for tests).
bool LayerNormUsesKernel(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias);

// A torch::nn::LayerNorm module's parameters and eps through LayerNormForward.
inline torch::Tensor ApplyLayerNorm(torch::nn::LayerNormImpl& norm, const torch::Tensor& x) {
  return LayerNormForward(x, norm.weight, norm.bias, norm.options.eps());
}

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LAYER_NORM_H_
