#include "model/ops_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace scalelab::model::ops::cpu {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The row kernels are compiled twice, for AVX2+FMA and for baseline x86-64, and picked at load
// time: the build itself targets baseline x86-64. Reassociation lets the compiler vectorise the
// reductions (sums of squares, dot products), whose order then differs from LibTorch's by
// rounding only; the loops never see inf or NaN from the mask, since masked entries are skipped.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SCALELAB_KERNEL                           \
  __attribute__((                                 \
      target_clones("arch=x86-64-v3", "default"), \
      optimize("O3", "no-math-errno", "associative-math", "no-signed-zeros", "no-trapping-math")))
#else
#define SCALELAB_KERNEL
#endif

// exp(x) as Cephes' expf (relative error ~2e-7), written so that the compiler vectorises it:
// std::exp is a library call that blocks vectorisation of every loop it is in. Exactly 0 below
// -87.3 (where expf underflows to denormals), as the softmax and cross-entropy expect of
// entries far below the row maximum.
// Plain expressions and builtins only: the kernels' optimize attribute keeps the compiler from
// inlining std::min, std::max or std::floor into them, and a call stops vectorisation.
__attribute__((always_inline)) inline float VecExp(float x) {
  const float low = x < -87.3f ? -87.3f : x;
  const float clamped = low > 88.7f ? 88.7f : low;
  const float n = __builtin_floorf(clamped * 1.44269504088896341f + 0.5f);
  // r = x - n * ln 2 in two parts, so that r keeps its low bits.
  float r = clamped - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return x < -87.3f ? 0.0f : p * scale;
}

__attribute__((always_inline)) inline float Max(float a, float b) { return a > b ? a : b; }

// Rows per parallel chunk so that each chunk touches about 16K floats: enough work to amortise
// a task, small enough that two threads get several chunks to balance.
int64_t RowGrain(int64_t row_length) {
  return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, row_length));
}

// out = a @ b through LibTorch's BLAS call, on a worker thread of at::parallel_for. Grad mode is
// thread-local and on in OpenMP's workers, and out= products refuse inputs that require grad
// under it; these products are inside an autograd Function, so no graph is wanted.
void MatMulInto(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) {
  torch::NoGradGuard no_grad;
  at::mm_out(out, a, b);
}

// out += a @ b, as MatMulInto.
void AddMatMulInto(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) {
  torch::NoGradGuard no_grad;
  out.addmm_(a, b);
}

// ---- Linear ----------------------------------------------------------------------------------

// Calls fn(first, count) on at most at::get_num_threads() contiguous shares of [0, n), each share
// a multiple of `align` long (but the last), in parallel.
template <typename ShareFn>
void ForEachShare(int64_t n, int64_t align, ShareFn fn) {
  if (n <= 0) return;
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  int64_t per_share = (n + threads - 1) / threads;
  per_share = (per_share + align - 1) / align * align;
  const int64_t shares = (n + per_share - 1) / per_share;
  at::parallel_for(0, shares, 1, [&](int64_t begin, int64_t end) {
    for (int64_t share = begin; share < end; ++share) {
      const int64_t first = share * per_share;
      fn(first, std::min(n, first + per_share) - first);
    }
  });
}

// Each product is cut into one share per thread along a dimension that needs no reduction across
// shares: rows of x for y and dx, output features for dweight. The shares run single-threaded
// BLAS calls side by side (see ConfigureCpuThreads).
class LinearFunction : public torch::autograd::Function<LinearFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& weight_in) {
    torch::Tensor x = x_in.detach().contiguous();
    torch::Tensor weight = weight_in.detach().contiguous();
    const int64_t in_features = weight.size(1);
    const int64_t out_features = weight.size(0);
    torch::Tensor rows_in = x.view({-1, in_features});
    torch::Tensor y = torch::empty({rows_in.size(0), out_features}, x.options());
    const torch::Tensor weight_t = weight.t();
    ForEachShare(rows_in.size(0), 16, [&](int64_t first, int64_t count) {
      MatMulInto(y.narrow(0, first, count), rows_in.narrow(0, first, count), weight_t);
    });
    ctx->save_for_backward({x, weight});
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = out_features;
    return y.view(sizes);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor x = saved[0].detach();
    const torch::Tensor weight = saved[1].detach();
    const int64_t in_features = weight.size(1);
    const int64_t out_features = weight.size(0);
    torch::Tensor rows_in = x.view({-1, in_features});
    torch::Tensor g = grads[0].detach().contiguous().view({-1, out_features});
    torch::Tensor dx;
    torch::Tensor dweight;
    if (ctx->needs_input_grad(0)) {
      dx = torch::empty_like(rows_in);
      ForEachShare(g.size(0), 16, [&](int64_t first, int64_t count) {
        MatMulInto(dx.narrow(0, first, count), g.narrow(0, first, count), weight);
      });
      dx = dx.view(x.sizes());
    }
    if (ctx->needs_input_grad(1)) {
      dweight = torch::empty_like(weight);
      ForEachShare(out_features, 8, [&](int64_t first, int64_t count) {
        MatMulInto(dweight.narrow(0, first, count), g.narrow(1, first, count).t(), rows_in);
      });
    }
    return {dx, dweight};
  }
};

// ---- RMSNorm ----------------------------------------------------------------------------------

// y = x * rstd * w; returns rstd.
SCALELAB_KERNEL float RmsNormRow(const float* __restrict x, const float* __restrict w,
                                 float* __restrict y, int64_t d, float eps) {
  float sum_sq = 0.0f;
  for (int64_t i = 0; i < d; ++i) sum_sq += x[i] * x[i];
  const float rstd = 1.0f / __builtin_sqrtf(sum_sq / static_cast<float>(d) + eps);
  for (int64_t i = 0; i < d; ++i) y[i] = x[i] * rstd * w[i];
  return rstd;
}

// dx_i = rstd * g_i w_i - x_i * rstd^3 / d * sum_j g_j w_j x_j;  dw_i += g_i x_i rstd.
SCALELAB_KERNEL void RmsNormBackwardRow(const float* __restrict x, const float* __restrict w,
                                        const float* __restrict g, float rstd, int64_t d,
                                        float* __restrict dx, float* __restrict dw) {
  float dot = 0.0f;
  for (int64_t i = 0; i < d; ++i) dot += g[i] * w[i] * x[i];
  const float coef = dot * rstd * rstd * rstd / static_cast<float>(d);
  for (int64_t i = 0; i < d; ++i) {
    dx[i] = rstd * g[i] * w[i] - x[i] * coef;
    dw[i] += g[i] * x[i] * rstd;
  }
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& weight_in, double eps) {
    torch::Tensor x = x_in.contiguous();
    torch::Tensor weight = weight_in.contiguous();
    const int64_t d = x.size(-1);
    const int64_t rows = d == 0 ? 0 : x.numel() / d;
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor rstd = torch::empty({rows}, x.options());
    const float* xp = x.data_ptr<float>();
    const float* wp = weight.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    float* rp = rstd.data_ptr<float>();
    const auto eps_f = static_cast<float>(eps);
    at::parallel_for(0, rows, RowGrain(d), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        rp[row] = RmsNormRow(xp + row * d, wp, yp + row * d, d, eps_f);
      }
    });
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    const torch::Tensor& weight = saved[1];
    const torch::Tensor& rstd = saved[2];
    torch::Tensor g = grads[0].contiguous();
    const int64_t d = x.size(-1);
    const int64_t rows = rstd.numel();
    torch::Tensor dx = torch::empty_like(x);
    // dweight sums over rows: each chunk of rows accumulates its own partial sum, added up at
    // the end, so the result does not depend on which thread ran which chunk.
    const int64_t chunks = std::min<int64_t>(std::max<int64_t>(rows, 1), 4 * at::get_num_threads());
    const int64_t rows_per_chunk = (rows + chunks - 1) / chunks;
    torch::Tensor dw_partial = torch::zeros({chunks, d}, x.options());
    const float* xp = x.data_ptr<float>();
    const float* wp = weight.data_ptr<float>();
    const float* gp = g.data_ptr<float>();
    const float* rp = rstd.data_ptr<float>();
    float* dxp = dx.data_ptr<float>();
    float* dwp = dw_partial.data_ptr<float>();
    at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t chunk = begin; chunk < end; ++chunk) {
        const int64_t last = std::min(rows, (chunk + 1) * rows_per_chunk);
        for (int64_t row = chunk * rows_per_chunk; row < last; ++row) {
          RmsNormBackwardRow(xp + row * d, wp, gp + row * d, rp[row], d, dxp + row * d,
                             dwp + chunk * d);
        }
      }
    });
    return {dx, dw_partial.sum(0), torch::Tensor()};
  }
};

// ---- Rotary -----------------------------------------------------------------------------------

// Rotates each (x_i, x_{i+half}) pair by +angle (sign 1) or -angle (sign -1, the backward).
SCALELAB_KERNEL void RotaryRow(const float* __restrict x, const float* __restrict cos,
                               const float* __restrict sin, float sign, int64_t half,
                               float* __restrict y) {
  for (int64_t i = 0; i < half; ++i) {
    const float s = sign * sin[i];
    y[i] = x[i] * cos[i] - x[i + half] * s;
    y[i + half] = x[i + half] * cos[i] + x[i] * s;
  }
}

torch::Tensor Rotate(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                     float sign) {
  const int64_t head_dim = x.size(-1);
  const int64_t half = head_dim / 2;
  const int64_t time = x.size(-2);
  const int64_t rows = x.numel() / head_dim;
  torch::Tensor y = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* cp = cos.data_ptr<float>();
  const float* sp = sin.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  at::parallel_for(0, rows, RowGrain(head_dim), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t t = row % time;
      RotaryRow(xp + row * head_dim, cp + t * half, sp + t * half, sign, half, yp + row * head_dim);
    }
  });
  return y;
}

class RotaryFunction : public torch::autograd::Function<RotaryFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos_in, const torch::Tensor& sin_in) {
    torch::Tensor cos = cos_in.contiguous();
    torch::Tensor sin = sin_in.contiguous();
    ctx->save_for_backward({cos, sin});
    return Rotate(x.contiguous(), cos, sin, 1.0f);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    // The rotation is orthogonal: its gradient is the rotation by the opposite angle.
    return {Rotate(grads[0].contiguous(), saved[0], saved[1], -1.0f), torch::Tensor(),
            torch::Tensor()};
  }
};

// ---- Causal attention -------------------------------------------------------------------------

// In place: p[0..visible) = softmax(scale * s[0..visible)), p[visible..length) = 0.
SCALELAB_KERNEL void CausalSoftmaxRow(float* __restrict p, int64_t visible, int64_t length,
                                      float scale) {
  float max_value = p[0];
  for (int64_t j = 1; j < visible; ++j) max_value = Max(max_value, p[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < visible; ++j) {
    p[j] = VecExp((p[j] - max_value) * scale);
    sum += p[j];
  }
  const float inv_sum = 1.0f / sum;
  for (int64_t j = 0; j < visible; ++j) p[j] *= inv_sum;
  for (int64_t j = visible; j < length; ++j) p[j] = 0.0f;
}

// In place: dp <- scale * p * (dp - sum_j p_j dp_j), the gradient of the scaled scores.
SCALELAB_KERNEL void SoftmaxBackwardRow(const float* __restrict p, float* __restrict dp,
                                        int64_t visible, int64_t length, float scale) {
  float dot = 0.0f;
  for (int64_t j = 0; j < visible; ++j) dot += p[j] * dp[j];
  for (int64_t j = 0; j < visible; ++j) dp[j] = scale * p[j] * (dp[j] - dot);
  for (int64_t j = visible; j < length; ++j) dp[j] = 0.0f;
}

// Queries per block of the causal attention: block i reads keys 0 .. past + (i + 1) * 64 - 1
// only, so the products skip most of the masked upper triangle (3/4 of the dense work at T 128,
// 5/8 at T 256) while each product stays large enough for the BLAS kernel.
constexpr int64_t kQueryBlock = 64;

// Calls fn(row0, rows, keys) for every query block of one kv head's [G * T, S] scores: rows
// row0 .. row0 + rows - 1 (one query head's queries t0 .. t0 + rows - 1) against keys
// 0 .. keys - 1.
template <typename BlockFn>
void ForEachQueryBlock(int64_t group, int64_t time, int64_t total, int64_t past, BlockFn fn) {
  for (int64_t g = 0; g < group; ++g) {
    for (int64_t t0 = 0; t0 < time; t0 += kQueryBlock) {
      const int64_t rows = std::min(kQueryBlock, time - t0);
      fn(g * time + t0, rows, std::min(total, past + t0 + rows));
    }
  }
}

class AttentionFunction : public torch::autograd::Function<AttentionFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in, int64_t past) {
    torch::Tensor q = q_in.detach().contiguous();
    torch::Tensor k = k_in.detach().contiguous();
    torch::Tensor v = v_in.detach().contiguous();
    const int64_t batch = q.size(0);
    const int64_t heads = q.size(1);
    const int64_t time = q.size(2);
    const int64_t head_dim = q.size(3);
    const int64_t kv_heads = k.size(1);
    const int64_t total = k.size(2);
    const int64_t group = heads / kv_heads;
    // Query heads h = kv * G + g of one kv head are adjacent in q, so [B, Hkv, G * T, hd] is a
    // view: each kv head and its whole group are one task of the parallel loop below.
    torch::Tensor qg = q.view({batch * kv_heads, group * time, head_dim});
    torch::Tensor kg = k.view({batch * kv_heads, total, head_dim});
    torch::Tensor vg = v.view({batch * kv_heads, total, head_dim});
    // Entries right of each block's key range are never written nor read.
    torch::Tensor probs = torch::empty({batch * kv_heads, group * time, total}, q.options());
    torch::Tensor out = torch::empty({batch * kv_heads, group * time, head_dim}, q.options());
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
    // One task per kv head, each product single-threaded inside it: LibTorch's bmm would loop
    // over the heads one after the other and thread each small product.
    at::parallel_for(0, batch * kv_heads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t head = begin; head < end; ++head) {
        torch::Tensor p_head = probs[head];
        float* pp = p_head.data_ptr<float>();
        ForEachQueryBlock(group, time, total, past, [&](int64_t row0, int64_t rows, int64_t keys) {
          torch::Tensor p_block = p_head.narrow(0, row0, rows).narrow(1, 0, keys);
          MatMulInto(p_block, qg[head].narrow(0, row0, rows), kg[head].narrow(0, 0, keys).t());
          for (int64_t row = row0; row < row0 + rows; ++row) {
            CausalSoftmaxRow(pp + row * total, std::min(total, past + row % time + 1), keys, scale);
          }
          MatMulInto(out[head].narrow(0, row0, rows), p_block, vg[head].narrow(0, 0, keys));
        });
      }
    });
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["past"] = past;
    return out.view({batch, heads, time, head_dim});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor q = saved[0].detach();
    const torch::Tensor k = saved[1].detach();
    const torch::Tensor v = saved[2].detach();
    const torch::Tensor probs = saved[3].detach();
    const int64_t past = ctx->saved_data["past"].toInt();
    const int64_t batch = q.size(0);
    const int64_t heads = q.size(1);
    const int64_t time = q.size(2);
    const int64_t head_dim = q.size(3);
    const int64_t kv_heads = k.size(1);
    const int64_t total = k.size(2);
    const int64_t group = heads / kv_heads;
    torch::Tensor qg = q.view({batch * kv_heads, group * time, head_dim});
    torch::Tensor kg = k.view({batch * kv_heads, total, head_dim});
    torch::Tensor vg = v.view({batch * kv_heads, total, head_dim});
    torch::Tensor dout =
        grads[0].detach().contiguous().view({batch * kv_heads, group * time, head_dim});
    torch::Tensor dscores = torch::empty_like(probs);
    torch::Tensor dq = torch::empty_like(qg);
    // dk and dv sum over the query blocks (and the group's query heads) that read each key.
    torch::Tensor dk = torch::zeros_like(kg);
    torch::Tensor dv = torch::zeros_like(vg);
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
    at::parallel_for(0, batch * kv_heads, 1, [&](int64_t begin, int64_t end) {
      for (int64_t head = begin; head < end; ++head) {
        torch::Tensor ds_head = dscores[head];
        const float* pp = probs[head].data_ptr<float>();
        float* dp = ds_head.data_ptr<float>();
        ForEachQueryBlock(group, time, total, past, [&](int64_t row0, int64_t rows, int64_t keys) {
          torch::Tensor dout_rows = dout[head].narrow(0, row0, rows);
          torch::Tensor p_block = probs[head].narrow(0, row0, rows).narrow(1, 0, keys);
          torch::Tensor ds_block = ds_head.narrow(0, row0, rows).narrow(1, 0, keys);
          MatMulInto(ds_block, dout_rows, vg[head].narrow(0, 0, keys).t());
          for (int64_t row = row0; row < row0 + rows; ++row) {
            SoftmaxBackwardRow(pp + row * total, dp + row * total,
                               std::min(total, past + row % time + 1), keys, scale);
          }
          MatMulInto(dq[head].narrow(0, row0, rows), ds_block, kg[head].narrow(0, 0, keys));
          AddMatMulInto(dk[head].narrow(0, 0, keys), ds_block.t(), qg[head].narrow(0, row0, rows));
          AddMatMulInto(dv[head].narrow(0, 0, keys), p_block.t(), dout_rows);
        });
      }
    });
    return {dq.view(q.sizes()), dk.view(k.sizes()), dv.view(v.sizes()), torch::Tensor()};
  }
};

// ---- SwiGLU -----------------------------------------------------------------------------------

SCALELAB_KERNEL void SwiGluChunk(const float* __restrict gate, const float* __restrict up,
                                 int64_t n, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + VecExp(-gate[i])) * up[i];
}

// d silu(a)/da = s (1 + a (1 - s)) with s = sigmoid(a).
SCALELAB_KERNEL void SwiGluBackwardChunk(const float* __restrict gate, const float* __restrict up,
                                         const float* __restrict g, int64_t n,
                                         float* __restrict dgate, float* __restrict dup) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + VecExp(-gate[i]));
    dup[i] = g[i] * gate[i] * s;
    dgate[i] = g[i] * up[i] * s * (1.0f + gate[i] * (1.0f - s));
  }
}

constexpr int64_t kElementGrain = int64_t{1} << 14;

class SwiGluFunction : public torch::autograd::Function<SwiGluFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_in,
                               const torch::Tensor& up_in) {
    torch::Tensor gate = gate_in.contiguous();
    torch::Tensor up = up_in.contiguous();
    torch::Tensor out = torch::empty_like(gate);
    const float* gp = gate.data_ptr<float>();
    const float* up_p = up.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, gate.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
      SwiGluChunk(gp + begin, up_p + begin, end - begin, op + begin);
    });
    ctx->save_for_backward({gate, up});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& gate = saved[0];
    const torch::Tensor& up = saved[1];
    torch::Tensor g = grads[0].contiguous();
    torch::Tensor dgate = torch::empty_like(gate);
    torch::Tensor dup = torch::empty_like(up);
    const float* gp = gate.data_ptr<float>();
    const float* up_p = up.data_ptr<float>();
    const float* grad_p = g.data_ptr<float>();
    float* dgp = dgate.data_ptr<float>();
    float* dup_p = dup.data_ptr<float>();
    at::parallel_for(0, gate.numel(), kElementGrain, [&](int64_t begin, int64_t end) {
      SwiGluBackwardChunk(gp + begin, up_p + begin, grad_p + begin, end - begin, dgp + begin,
                          dup_p + begin);
    });
    return {dgate, dup};
  }
};

// ---- Cross-entropy ----------------------------------------------------------------------------

SCALELAB_KERNEL float LogSumExpRow(const float* __restrict x, int64_t n) {
  float max_value = x[0];
  for (int64_t j = 1; j < n; ++j) max_value = Max(max_value, x[j]);
  float sum = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum += VecExp(x[j] - max_value);
  return max_value + __builtin_logf(sum);
}

// dx_j = g * (exp(x_j - lse) - [j == target]).
SCALELAB_KERNEL void CrossEntropyBackwardRow(const float* __restrict x, float lse, float g,
                                             int64_t n, int64_t target, float* __restrict dx) {
  for (int64_t j = 0; j < n; ++j) dx[j] = g * VecExp(x[j] - lse);
  dx[target] -= g;
}

class CrossEntropyFunction : public torch::autograd::Function<CrossEntropyFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits_in,
                               const torch::Tensor& targets_in) {
    torch::Tensor logits = logits_in.contiguous();
    torch::Tensor targets = targets_in.contiguous();
    const int64_t rows = logits.size(0);
    const int64_t vocab = logits.size(1);
    torch::Tensor lse = torch::empty({rows}, logits.options());
    torch::Tensor losses = torch::empty({rows}, logits.options().dtype(torch::kFloat64));
    const float* xp = logits.data_ptr<float>();
    const int64_t* tp = targets.data_ptr<int64_t>();
    float* lp = lse.data_ptr<float>();
    double* lossp = losses.data_ptr<double>();
    at::parallel_for(0, rows, RowGrain(vocab), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        lp[row] = LogSumExpRow(xp + row * vocab, vocab);
        lossp[row] = static_cast<double>(lp[row]) - xp[row * vocab + tp[row]];
      }
    });
    ctx->save_for_backward({logits, targets, lse});
    // Summed in fp64: over 10^5+ rows an fp32 running sum would lose the last digits.
    return (losses.sum() / static_cast<double>(rows)).to(torch::kFloat32);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& logits = saved[0];
    const torch::Tensor& targets = saved[1];
    const torch::Tensor& lse = saved[2];
    const int64_t rows = logits.size(0);
    const int64_t vocab = logits.size(1);
    const float g = grads[0].item<float>() / static_cast<float>(rows);
    torch::Tensor dlogits = torch::empty_like(logits);
    const float* xp = logits.data_ptr<float>();
    const int64_t* tp = targets.data_ptr<int64_t>();
    const float* lp = lse.data_ptr<float>();
    float* dp = dlogits.data_ptr<float>();
    at::parallel_for(0, rows, RowGrain(vocab), [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        CrossEntropyBackwardRow(xp + row * vocab, lp[row], g, vocab, tp[row], dp + row * vocab);
      }
    });
    return {dlogits, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& weight) {
  return LinearFunction::apply(x, weight);
}

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return RmsNormFunction::apply(x, weight, eps);
}

torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  return RotaryFunction::apply(x, cos, sin);
}

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past) {
  return AttentionFunction::apply(q, k, v, past);
}

torch::Tensor SwiGlu(const torch::Tensor& gate, const torch::Tensor& up) {
  return SwiGluFunction::apply(gate, up);
}

torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  return CrossEntropyFunction::apply(logits, targets);
}

}  // namespace scalelab::model::ops::cpu
