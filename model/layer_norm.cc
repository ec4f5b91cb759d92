#include "model/layer_norm.h"

#include <cstdint>
#include <limits>

#ifdef SCALELAB_WITH_KERNELS
#include "kernels/layernorm.cuh"
#endif

namespace scalelab::model {
namespace {

#ifdef SCALELAB_WITH_KERNELS
bool IsContiguousFloatCuda(const torch::Tensor& tensor) {
  return tensor.defined() && tensor.is_cuda() && tensor.scalar_type() == torch::kFloat &&
         tensor.is_contiguous();
}
#endif

}  // namespace

bool LayerNormUsesKernel(const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias) {
#ifdef SCALELAB_WITH_KERNELS
  const bool wants_grad = torch::GradMode::is_enabled() &&
                          (x.requires_grad() || weight.requires_grad() || bias.requires_grad());
  const int64_t cols = x.dim() > 0 ? x.size(-1) : 0;
  return !wants_grad && IsContiguousFloatCuda(x) && IsContiguousFloatCuda(weight) &&
         IsContiguousFloatCuda(bias) && cols >= 1 && weight.numel() == cols &&
         bias.numel() == cols && x.numel() / cols <= std::numeric_limits<int>::max() &&
         cols <= std::numeric_limits<int>::max();
#else
  (void)x;
  (void)weight;
  (void)bias;
  return false;
#endif
}

torch::Tensor LayerNormForward(const torch::Tensor& x, const torch::Tensor& weight,
                               const torch::Tensor& bias, double eps) {
#ifdef SCALELAB_WITH_KERNELS
  if (LayerNormUsesKernel(x, weight, bias)) {
    const int64_t cols = x.size(-1);
    torch::Tensor out = torch::empty_like(x);
    // Stream 0, the legacy default stream, is the one LibTorch itself uses unless a caller has
    // set another current stream; nothing in scalelab does. (The Debian LibTorch is CPU-only, so
    // this branch runs only with a CUDA build of LibTorch.)
    kernels::LayerNormForward(out.data_ptr<float>(), /*mean=*/nullptr, /*rstd=*/nullptr,
                              x.data_ptr<float>(), weight.data_ptr<float>(), bias.data_ptr<float>(),
                              static_cast<int>(x.numel() / cols), static_cast<int>(cols),
                              static_cast<float>(eps),
                              /*stream=*/nullptr);
    return out;
  }
#endif
  return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

}  // namespace scalelab::model
