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

// Rows of scores [B * H * T, S] in the order of q [B, H, T, hd]: row r is query t = r % T.
template <typename RowFn>
void ForEachCausalRow(int64_t rows, int64_t time, int64_t total, int64_t past, RowFn row_fn) {
  at::parallel_for(0, rows, RowGrain(total), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      row_fn(row, std::min(total, past + row % time + 1));
    }
  });
}

class AttentionFunction : public torch::autograd::Function<AttentionFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in, int64_t past) {
    torch::Tensor q = q_in.contiguous();
    torch::Tensor k = k_in.contiguous();
    torch::Tensor v = v_in.contiguous();
    const int64_t batch = q.size(0);
    const int64_t heads = q.size(1);
    const int64_t time = q.size(2);
    const int64_t head_dim = q.size(3);
    const int64_t kv_heads = k.size(1);
    const int64_t total = k.size(2);
    const int64_t group = heads / kv_heads;
    // Query heads h = kv * G + g of one kv head are adjacent in q, so [B, Hkv, G * T, hd] is a
    // view: one batched product per kv head serves its whole group.
    torch::Tensor qg = q.view({batch * kv_heads, group * time, head_dim});
    torch::Tensor kg = k.view({batch * kv_heads, total, head_dim});
    torch::Tensor vg = v.view({batch * kv_heads, total, head_dim});
    torch::Tensor probs = torch::bmm(qg, kg.transpose(1, 2));  // [B*Hkv, G*T, S]
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
    float* pp = probs.data_ptr<float>();
    ForEachCausalRow(batch * heads * time, time, total, past, [&](int64_t row, int64_t visible) {
      CausalSoftmaxRow(pp + row * total, visible, total, scale);
    });
    torch::Tensor out = torch::bmm(probs, vg).view({batch, heads, time, head_dim});
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["past"] = past;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& q = saved[0];
    const torch::Tensor& k = saved[1];
    const torch::Tensor& v = saved[2];
    const torch::Tensor& probs = saved[3];
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
    torch::Tensor dout = grads[0].contiguous().view({batch * kv_heads, group * time, head_dim});
    torch::Tensor dscores = torch::bmm(dout, vg.transpose(1, 2));
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
    const float* pp = probs.data_ptr<float>();
    float* dp = dscores.data_ptr<float>();
    ForEachCausalRow(batch * heads * time, time, total, past, [&](int64_t row, int64_t visible) {
      SoftmaxBackwardRow(pp + row * total, dp + row * total, visible, total, scale);
    });
    // The products over G * T rows sum the group's query heads into their shared kv head.
    torch::Tensor dq = torch::bmm(dscores, kg).view(q.sizes());
    torch::Tensor dk = torch::bmm(dscores.transpose(1, 2), qg).view(k.sizes());
    torch::Tensor dv = torch::bmm(probs.transpose(1, 2), dout).view(v.sizes());
    return {dq, dk, dv, torch::Tensor()};
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
