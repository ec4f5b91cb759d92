#include "model/ops_cuda.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "kernels/cross_entropy.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rotary.cuh"
#include "kernels/ssd_scan.cuh"

namespace scalelab::model::ops {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kMaxInt = std::numeric_limits<int>::max();

bool IsKernelFloat(const torch::Tensor& tensor) {
  return tensor.defined() && tensor.is_cuda() &&
         (tensor.scalar_type() == torch::kFloat || tensor.scalar_type() == torch::kBFloat16);
}

// at::BFloat16 and __nv_bfloat16 are both one uint16_t of bf16 bits.
__nv_bfloat16* Bf16(const torch::Tensor& tensor) {
  static_assert(sizeof(at::BFloat16) == sizeof(__nv_bfloat16));
  return reinterpret_cast<__nv_bfloat16*>(tensor.data_ptr<at::BFloat16>());
}

class RmsNormCudaFunction : public torch::autograd::Function<RmsNormCudaFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& weight_in, double eps) {
    const torch::Tensor x = x_in.contiguous();
    const torch::Tensor weight = weight_in.contiguous();
    const int cols = static_cast<int>(x.size(-1));
    const int rows = static_cast<int>(x.numel() / cols);
    torch::Tensor out = torch::empty_like(x);
    torch::Tensor rstd = torch::empty({rows}, x.options().dtype(torch::kFloat));
    if (x.scalar_type() == torch::kFloat) {
      kernels::RmsNormForward(out.data_ptr<float>(), rstd.data_ptr<float>(), x.data_ptr<float>(),
                              weight.data_ptr<float>(), rows, cols, static_cast<float>(eps),
                              /*stream=*/nullptr);
    } else {
      kernels::RmsNormForward(Bf16(out), rstd.data_ptr<float>(), Bf16(x), Bf16(weight), rows, cols,
                              static_cast<float>(eps), /*stream=*/nullptr);
    }
    ctx->save_for_backward({x, weight, rstd});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& rstd = saved[2];
    // The backward kernel is fp32 only; bf16 tensors go through fp32 copies.
    const torch::Tensor x32 = x.to(torch::kFloat).contiguous();
    const torch::Tensor weight32 = weight.to(torch::kFloat).contiguous();
    const torch::Tensor dout32 = grad_outputs[0].to(torch::kFloat).contiguous();
    const int cols = static_cast<int>(x.size(-1));
    const int rows = static_cast<int>(x.numel() / cols);
    torch::Tensor dx = torch::empty_like(x32);
    torch::Tensor dweight = torch::empty_like(weight32);
    kernels::RmsNormBackward(dx.data_ptr<float>(), dweight.data_ptr<float>(),
                             dout32.data_ptr<float>(), x32.data_ptr<float>(),
                             weight32.data_ptr<float>(), rstd.data_ptr<float>(), rows, cols,
                             /*stream=*/nullptr);
    return {dx.to(x.scalar_type()), dweight.to(weight.scalar_type()), torch::Tensor()};
  }
};

class RotaryCudaFunction : public torch::autograd::Function<RotaryCudaFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return Rotate(x, cos, sin, /*inverse=*/false);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    // The rotation is orthogonal: its gradient is the inverse rotation of the upstream one.
    return {Rotate(grad_outputs[0], saved[0], saved[1], /*inverse=*/true), torch::Tensor(),
            torch::Tensor()};
  }

 private:
  static torch::Tensor Rotate(const torch::Tensor& x_in, const torch::Tensor& cos_in,
                              const torch::Tensor& sin_in, bool inverse) {
    const torch::Tensor x = x_in.contiguous();
    const torch::Tensor cos = cos_in.contiguous();
    const torch::Tensor sin = sin_in.contiguous();
    const int rows = static_cast<int>(x.size(0) * x.size(1));
    const int seq = static_cast<int>(x.size(2));
    const int head_dim = static_cast<int>(x.size(3));
    torch::Tensor out = torch::empty_like(x);
    if (x.scalar_type() == torch::kFloat) {
      kernels::Rotary(out.data_ptr<float>(), x.data_ptr<float>(), cos.data_ptr<float>(),
                      sin.data_ptr<float>(), rows, seq, head_dim, inverse, /*stream=*/nullptr);
    } else {
      kernels::Rotary(Bf16(out), Bf16(x), cos.data_ptr<float>(), sin.data_ptr<float>(), rows, seq,
                      head_dim, inverse, /*stream=*/nullptr);
    }
    return out;
  }
};

class CrossEntropyCudaFunction : public torch::autograd::Function<CrossEntropyCudaFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits_in,
                               const torch::Tensor& targets_in, bool wants_grad) {
    const torch::Tensor logits = logits_in.contiguous();
    const torch::Tensor targets = targets_in.contiguous();
    const int rows = static_cast<int>(logits.size(0));
    const int vocab = static_cast<int>(logits.size(1));
    torch::Tensor loss = torch::empty({rows}, logits.options().dtype(torch::kFloat));
    torch::Tensor dlogits;
    torch::Tensor one;
    if (wants_grad) {
      dlogits = torch::empty_like(logits);
      one = torch::ones({1}, logits.options().dtype(torch::kFloat));
    }
    const float* dloss = wants_grad ? one.data_ptr<float>() : nullptr;
    const float scale = 1.0f / static_cast<float>(rows);
    if (logits.scalar_type() == torch::kFloat) {
      kernels::CrossEntropyForwardBackward(
          loss.data_ptr<float>(), wants_grad ? dlogits.data_ptr<float>() : nullptr,
          logits.data_ptr<float>(), targets.data_ptr<int64_t>(), dloss, scale, rows, vocab,
          /*stream=*/nullptr);
    } else {
      kernels::CrossEntropyForwardBackward(
          loss.data_ptr<float>(), wants_grad ? Bf16(dlogits) : nullptr, Bf16(logits),
          targets.data_ptr<int64_t>(), dloss, scale, rows, vocab, /*stream=*/nullptr);
    }
    if (wants_grad) ctx->save_for_backward({dlogits});
    return loss.mean();
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    // Without wants_grad nothing was saved; autograd calls backward only when logits need a
    // gradient, and then CrossEntropyCuda passed wants_grad = true.
    const torch::Tensor& dlogits = saved.at(0);
    return {dlogits * grad_outputs[0].to(dlogits.scalar_type()), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool RmsNormCudaApplies(const torch::Tensor& x, const torch::Tensor& weight) {
  if (!IsKernelFloat(x) || !IsKernelFloat(weight) || x.scalar_type() != weight.scalar_type() ||
      x.dim() < 1 || weight.dim() != 1) {
    return false;
  }
  const int64_t cols = x.size(-1);
  return cols >= 1 && weight.numel() == cols && cols <= kMaxInt && x.numel() / cols <= kMaxInt;
}

torch::Tensor RmsNormCuda(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return RmsNormCudaFunction::apply(x, weight, eps);
}

bool RotaryCudaApplies(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  if (!IsKernelFloat(x) || x.dim() != 4 || x.size(3) < 2 || x.size(3) % 2 != 0) return false;
  const auto is_table = [&](const torch::Tensor& table) {
    return table.defined() && table.is_cuda() && table.scalar_type() == torch::kFloat &&
           table.dim() == 2 && table.size(0) == x.size(2) && table.size(1) == x.size(3) / 2;
  };
  return is_table(cos) && is_table(sin) && x.size(0) * x.size(1) <= kMaxInt && x.size(2) <= kMaxInt;
}

torch::Tensor RotaryCuda(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin) {
  return RotaryCudaFunction::apply(x, cos, sin);
}

bool CrossEntropyCudaApplies(const torch::Tensor& logits, const torch::Tensor& targets) {
  return IsKernelFloat(logits) && logits.dim() == 2 && logits.size(0) >= 1 &&
         logits.size(0) <= kMaxInt && logits.size(1) >= 1 && logits.size(1) <= kMaxInt &&
         targets.defined() && targets.is_cuda() && targets.scalar_type() == torch::kLong &&
         targets.dim() == 1 && targets.size(0) == logits.size(0);
}

torch::Tensor CrossEntropyCuda(const torch::Tensor& logits, const torch::Tensor& targets) {
  const bool wants_grad = torch::GradMode::is_enabled() && logits.requires_grad();
  return CrossEntropyCudaFunction::apply(logits, targets, wants_grad);
}

bool SsdScanCudaApplies(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                        const torch::Tensor& b, const torch::Tensor& c, int64_t chunk,
                        const torch::Tensor& initial_state) {
  if (!IsKernelFloat(x) || !IsKernelFloat(dt) || !IsKernelFloat(a) || !IsKernelFloat(b) ||
      !IsKernelFloat(c) || x.dim() != 4 || dt.dim() != 3 || a.dim() != 1 || b.dim() != 3 ||
      c.dim() != 3) {
    return false;
  }
  const int64_t batch = x.size(0), tokens = x.size(1), heads = x.size(2), head_dim = x.size(3);
  const int64_t d_state = b.size(2);
  const bool shapes_agree = dt.sizes() == torch::IntArrayRef({batch, tokens, heads}) &&
                            a.size(0) == heads && b.size(0) == batch && b.size(1) == tokens &&
                            c.sizes() == b.sizes();
  if (!shapes_agree || tokens < 1 || chunk < 1 || head_dim < 1 || d_state < 1) return false;
  if (initial_state.defined() &&
      (!IsKernelFloat(initial_state) ||
       initial_state.sizes() != torch::IntArrayRef({batch, heads, head_dim, d_state}))) {
    return false;
  }
  constexpr int64_t kMaxStateFloats = 48 * 1024;
  return x.numel() <= kMaxInt && batch * heads * head_dim * d_state <= kMaxInt &&
         head_dim * d_state <= kMaxStateFloats;
}

torch::Tensor SsdScanCuda(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                          const torch::Tensor& b, const torch::Tensor& c, int64_t chunk,
                          const torch::Tensor& initial_state, torch::Tensor* final_state) {
  const auto fp32 = [](const torch::Tensor& tensor) {
    return tensor.to(torch::kFloat).contiguous();
  };
  const torch::Tensor x32 = fp32(x), dt32 = fp32(dt), a32 = fp32(a), b32 = fp32(b), c32 = fp32(c);
  kernels::SsdShape shape;
  shape.batch = static_cast<int>(x.size(0));
  shape.seq = static_cast<int>(x.size(1));
  shape.heads = static_cast<int>(x.size(2));
  shape.head_dim = static_cast<int>(x.size(3));
  shape.d_state = static_cast<int>(b.size(2));
  shape.chunk = static_cast<int>(std::min<int64_t>(chunk, x.size(1)));
  torch::Tensor y = torch::empty_like(x32);
  torch::Tensor chunk_states = torch::empty(
      {shape.batch, shape.NumChunks(), shape.heads, shape.head_dim, shape.d_state}, x32.options());
  torch::Tensor state_in = initial_state.defined() ? fp32(initial_state) : torch::Tensor();
  torch::Tensor state_out =
      final_state != nullptr
          ? torch::empty({shape.batch, shape.heads, shape.head_dim, shape.d_state}, x32.options())
          : torch::Tensor();
  kernels::SsdChunkScan(y.data_ptr<float>(), chunk_states.data_ptr<float>(), x32.data_ptr<float>(),
                        dt32.data_ptr<float>(), a32.data_ptr<float>(), b32.data_ptr<float>(),
                        c32.data_ptr<float>(), shape, /*stream=*/nullptr);
  kernels::SsdChunkCombine(
      y.data_ptr<float>(), state_out.defined() ? state_out.data_ptr<float>() : nullptr,
      chunk_states.data_ptr<float>(), state_in.defined() ? state_in.data_ptr<float>() : nullptr,
      dt32.data_ptr<float>(), a32.data_ptr<float>(), c32.data_ptr<float>(), shape,
      /*stream=*/nullptr);
  if (final_state != nullptr) *final_state = state_out;
  return y.to(x.scalar_type());
}

}  // namespace scalelab::model::ops
