// The dispatcher: every op picks its implementation here (see model/ops.h), and counts its
// multiply-adds here, whichever implementation runs.
#include "model/ops.h"

#include <dlfcn.h>
#include <torch/version.h>

#include <atomic>
#include <cmath>
#include <initializer_list>
#include <limits>

#include "model/ops_cpu.h"

#ifdef SCALELAB_WITH_KERNELS
#include "model/ops_cuda.h"
#endif

namespace scalelab::model::ops {
namespace {

using torch::indexing::Slice;

thread_local MacCounter* active_counter = nullptr;
std::atomic<Impl> current_impl{Impl::kFast};

// The fused CPU ops are fp32 only; anything else (fp64 checks, bf16, other devices) runs the
// reference composition.
bool UseFusedCpu(std::initializer_list<const torch::Tensor*> tensors) {
  if (current_impl.load() != Impl::kFast) return false;
  for (const torch::Tensor* tensor : tensors) {
    if (!tensor->is_cpu() || tensor->scalar_type() != torch::kFloat32) return false;
  }
  return true;
}

}  // namespace

MacCounter::MacCounter() : outer_(active_counter) { active_counter = this; }
MacCounter::~MacCounter() { active_counter = outer_; }

void SetImpl(Impl impl) { current_impl.store(impl); }
Impl CurrentImpl() { return current_impl.load(); }

void ConfigureCpuThreads(int threads) {
  torch::set_num_threads(threads);
  // Looked up at run time because which BLAS LibTorch loaded is a packaging detail; absent,
  // there is no second pool to cut.
  using SetThreadsFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    fn(1);
  }
}

void AddMacs(int64_t macs) {
  if (active_counter != nullptr) active_counter->macs_ += macs;
}

torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  AddMacs(x.numel() / x.size(-1) * weight.size(0) * weight.size(1));
  if (!bias.defined() && UseFusedCpu({&x, &weight}) && weight.dim() == 2 && x.dim() >= 1 &&
      x.size(-1) == weight.size(1)) {
    return cpu::Linear(x, weight);
  }
  return torch::linear(x, weight, bias);
}

// CUDA: RMSNorm, rotary and cross-entropy go to the kernels in kernels/ (model/ops_cuda.h,
// behind SCALELAB_WITH_KERNELS) when their *CudaApplies check holds; attention goes to
// at::scaled_dot_product_attention with LibTorch >= 2.0; the rest run LibTorch's ops through
// the reference.

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
#ifdef SCALELAB_WITH_KERNELS
  if (x.is_cuda() && CurrentImpl() == Impl::kFast && RmsNormCudaApplies(x, weight)) {
    return RmsNormCuda(x, weight, eps);
  }
#endif
  if (UseFusedCpu({&x, &weight})) return cpu::RmsNorm(x, weight, eps);
  return reference::RmsNorm(x, weight, eps);
}

torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
#ifdef SCALELAB_WITH_KERNELS
  if (x.is_cuda() && CurrentImpl() == Impl::kFast && RotaryCudaApplies(x, cos, sin)) {
    return RotaryCuda(x, cos, sin);
  }
#endif
  // The fused op has no gradient for the tables (they are never trained).
  if (UseFusedCpu({&x, &cos, &sin}) && !cos.requires_grad() && !sin.requires_grad() &&
      x.size(-1) % 2 == 0) {
    return cpu::ApplyRotary(x, cos, sin);
  }
  return reference::ApplyRotary(x, cos, sin);
}

void RotaryTables(int64_t first, int64_t count, int64_t head_dim, double theta,
                  const torch::Device& device, torch::Tensor* cos, torch::Tensor* sin) {
  const auto options = torch::TensorOptions().dtype(torch::kFloat64);
  // Angles in fp64, then fp32: positions beyond a few thousand lose precision otherwise.
  torch::Tensor inv_freq = torch::pow(
      theta, -torch::arange(0, head_dim / 2, options) * 2.0 / static_cast<double>(head_dim));
  torch::Tensor positions = torch::arange(first, first + count, options);
  torch::Tensor angles = torch::outer(positions, inv_freq);
  *cos = angles.cos().to(device, torch::kFloat32);
  *sin = angles.sin().to(device, torch::kFloat32);
}

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past) {
  AddMacs(2 * q.size(0) * q.size(1) * q.size(2) * k.size(2) * q.size(3));
#if TORCH_VERSION_MAJOR >= 2
  // CUDA: LibTorch's fused attention (flash or memory-efficient kernels; no [T, S] score matrix)
  // where its masks mean ours: is_causal is a top-left causal mask, which is ours only without
  // a cached past; one new token after a past sees every key, so it needs no mask at all. A past
  // with several new tokens (a second prompt chunk) keeps the reference. Same default scale,
  // 1/sqrt(hd). The kv heads are repeated as the reference does (enable_gqa is newer than 2.0).
  if (q.is_cuda() && CurrentImpl() == Impl::kFast && (past == 0 || q.size(2) == 1)) {
    const int64_t groups = q.size(1) / k.size(1);
    const torch::Tensor keys = groups > 1 ? k.repeat_interleave(groups, /*dim=*/1) : k;
    const torch::Tensor values = groups > 1 ? v.repeat_interleave(groups, /*dim=*/1) : v;
    return at::scaled_dot_product_attention(q, keys, values, /*attn_mask=*/{},
                                            /*dropout_p=*/0.0, /*is_causal=*/past == 0);
  }
#endif
  if (UseFusedCpu({&q, &k, &v})) return cpu::CausalAttention(q, k, v, past);
  return reference::CausalAttention(q, k, v, past);
}

torch::Tensor SwiGlu(const torch::Tensor& gate, const torch::Tensor& up) {
  // CUDA: no kernel of ours yet; LibTorch's ops (cuBLAS) through the reference.
  if (UseFusedCpu({&gate, &up}) && gate.sizes() == up.sizes()) return cpu::SwiGlu(gate, up);
  return reference::SwiGlu(gate, up);
}

torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets) {
#ifdef SCALELAB_WITH_KERNELS
  if (logits.is_cuda() && CurrentImpl() == Impl::kFast &&
      CrossEntropyCudaApplies(logits, targets)) {
    return CrossEntropyCuda(logits, targets);
  }
#endif
  // Targets outside [0, V) (e.g. an ignore index) keep LibTorch's semantics and errors.
  if (UseFusedCpu({&logits}) && logits.dim() == 2 && targets.scalar_type() == torch::kLong &&
      targets.is_cpu() && targets.numel() == logits.size(0) && logits.size(0) > 0 &&
      targets.min().item<int64_t>() >= 0 && targets.max().item<int64_t>() < logits.size(1)) {
    return cpu::CrossEntropy(logits, targets);
  }
  return reference::CrossEntropy(logits, targets);
}

namespace reference {

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.index({"...", Slice(0, half)});
  torch::Tensor x2 = x.index({"...", Slice(half, torch::indexing::None)});
  return torch::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
}

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past) {
  const int64_t heads = q.size(1);
  const int64_t kv_heads = k.size(1);
  torch::Tensor keys = k;
  torch::Tensor values = v;
  if (kv_heads != heads) {
    keys = k.repeat_interleave(heads / kv_heads, /*dim=*/1);
    values = v.repeat_interleave(heads / kv_heads, /*dim=*/1);
  }
  const int64_t time = q.size(2);
  const int64_t total = keys.size(2);
  torch::Tensor scores =
      torch::matmul(q, keys.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  // Query t (position past + t) sees keys 0 .. past + t.
  torch::Tensor mask = torch::ones({time, total}, torch::TensorOptions().dtype(torch::kBool))
                           .triu(past + 1)
                           .to(q.device());
  scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(scores, -1), values);
}

torch::Tensor SwiGlu(const torch::Tensor& gate, const torch::Tensor& up) {
  return torch::silu(gate) * up;
}

torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(logits, targets);
}

}  // namespace reference
}  // namespace scalelab::model::ops
