#include "model/ssd.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "model/ops.h"

#ifdef SCALELAB_WITH_KERNELS
#include "model/ops_cuda.h"
#endif

namespace scalelab::model::ssd {
namespace {

using torch::indexing::Slice;

// The decay exponents are sums of up to T terms of dt * a; in bf16 (8 bits of mantissa) their
// differences would be noise, so every scan computes in fp32, or fp64 when x is fp64.
torch::ScalarType ComputeType(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

// segsum(v)[..., l, s] = v[..., s+1] + ... + v[..., l] for s <= l (0 on the diagonal), -inf above
// it. Summing the masked copies, rather than subtracting two cumsums, keeps each entry as exact
// as a sum of its own terms (the ssd_minimal listing of Dao & Gu 2024).
torch::Tensor SegmentSum(const torch::Tensor& v) {
  const int64_t length = v.size(-1);
  const torch::TensorOptions bool_options =
      torch::TensorOptions().dtype(torch::kBool).device(v.device());
  std::vector<int64_t> sizes = v.sizes().vec();
  sizes.push_back(length);
  torch::Tensor repeated =
      v.unsqueeze(-1).expand(sizes);  // [..., l(s), copy]: repeated[..., i, j] = v[i]
  torch::Tensor strictly_lower = torch::ones({length, length}, bool_options).tril(-1);
  torch::Tensor sums = repeated.masked_fill(strictly_lower.logical_not(), 0).cumsum(-2);
  torch::Tensor lower = torch::ones({length, length}, bool_options).tril(0);
  return sums.masked_fill(lower.logical_not(), -std::numeric_limits<double>::infinity());
}

}  // namespace

int64_t ChunkedScanMacs(int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                        int64_t d_state, int64_t chunk) {
  if (tokens <= 0) return 0;
  const int64_t q = std::min(chunk, tokens);
  const int64_t n_chunks = (tokens + q - 1) / q;
  // Per chunk: C B^T (q*q*N, shared by the heads: one group); the masked scores times x
  // (H*q*q*P); the chunk's own state from B and x (H*q*P*N); the state carried in from earlier
  // chunks (H*P*N); its readout through C (H*q*P*N). Dense products: the causal mask does not
  // halve them, as it does not halve the attention term of CausalAttention.
  const int64_t per_chunk = q * q * d_state + heads * q * q * head_dim +
                            2 * heads * q * head_dim * d_state + heads * head_dim * d_state;
  return batch * n_chunks * per_chunk;
}

namespace {

// One step of the recurrence without touching `state`, so autograd can differentiate through a
// sequence of them (ScanNaive); returns y_t and sets *next.
torch::Tensor StepOutOfPlace(const torch::Tensor& x_t, const torch::Tensor& dt_t,
                             const torch::Tensor& a, const torch::Tensor& b_t,
                             const torch::Tensor& c_t, const torch::Tensor& state,
                             torch::Tensor* next) {
  const torch::ScalarType compute = ComputeType(x_t);
  torch::Tensor dt = dt_t.to(compute);
  torch::Tensor decay = torch::exp(dt * a.to(compute)).unsqueeze(-1).unsqueeze(-1);  // [B,H,1,1]
  torch::Tensor dtx = (x_t.to(compute) * dt.unsqueeze(-1)).unsqueeze(-1);            // [B,H,P,1]
  torch::Tensor b = b_t.to(compute).unsqueeze(1).unsqueeze(1);                       // [B,1,1,N]
  *next = state.to(compute) * decay + dtx * b;
  ops::AddMacs(2 * state.numel());
  return (*next * c_t.to(compute).unsqueeze(1).unsqueeze(1)).sum(-1);  // [B,H,P]
}

}  // namespace

torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& dt_t, const torch::Tensor& a,
                   const torch::Tensor& b_t, const torch::Tensor& c_t, torch::Tensor& state) {
  torch::Tensor next;
  torch::Tensor y = StepOutOfPlace(x_t, dt_t, a, b_t, c_t, state, &next);
  state.copy_(next);
  return y.to(x_t.scalar_type());
}

torch::Tensor ScanNaive(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                        const torch::Tensor& b, const torch::Tensor& c,
                        const torch::Tensor& initial_state, torch::Tensor* final_state) {
  const int64_t batch = x.size(0), tokens = x.size(1), heads = x.size(2), head_dim = x.size(3);
  const int64_t d_state = b.size(-1);
  const torch::TensorOptions options = x.options().dtype(ComputeType(x));
  torch::Tensor state = initial_state.defined()
                            ? initial_state.to(options)
                            : torch::zeros({batch, heads, head_dim, d_state}, options);
  std::vector<torch::Tensor> ys;
  ys.reserve(static_cast<size_t>(tokens));
  for (int64_t t = 0; t < tokens; ++t) {
    torch::Tensor next;
    ys.push_back(StepOutOfPlace(x.select(1, t), dt.select(1, t), a, b.select(1, t), c.select(1, t),
                                state, &next));
    state = next;
  }
  if (final_state != nullptr) *final_state = state;
  if (tokens == 0) return torch::zeros_like(x);
  return torch::stack(ys, /*dim=*/1).to(x.scalar_type());
}

torch::Tensor ScanChunked(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                          const torch::Tensor& b, const torch::Tensor& c, int64_t chunk,
                          const torch::Tensor& initial_state, torch::Tensor* final_state) {
  const int64_t batch = x.size(0), tokens = x.size(1), heads = x.size(2), head_dim = x.size(3);
  const int64_t d_state = b.size(-1);
  const torch::TensorOptions options = x.options().dtype(ComputeType(x));
  torch::Tensor state = initial_state.defined()
                            ? initial_state.to(options)
                            : torch::zeros({batch, heads, head_dim, d_state}, options);
  if (tokens == 0) {
    if (final_state != nullptr) *final_state = state;
    return torch::zeros_like(x);
  }
  ops::AddMacs(ChunkedScanMacs(batch, tokens, heads, head_dim, d_state, chunk));
#ifdef SCALELAB_WITH_KERNELS
  // CUDA without autograd (a prompt in generation, evaluation): the SSD kernels, which have no
  // backward. Training keeps the composition below, which autograd differentiates.
  const bool wants_grad =
      torch::GradMode::is_enabled() &&
      (x.requires_grad() || dt.requires_grad() || a.requires_grad() || b.requires_grad() ||
       c.requires_grad() || (initial_state.defined() && initial_state.requires_grad()));
  if (x.is_cuda() && !wants_grad && ops::CurrentImpl() == ops::Impl::kFast &&
      ops::SsdScanCudaApplies(x, dt, a, b, c, chunk, initial_state)) {
    return ops::SsdScanCuda(x, dt, a, b, c, chunk, initial_state, final_state);
  }
#endif
  // A prompt shorter than the chunk is one chunk of its own length, not a padded full chunk.
  const int64_t q = std::min(chunk, tokens);
  const int64_t n_chunks = (tokens + q - 1) / q;
  const int64_t pad = n_chunks * q - tokens;

  torch::Tensor dtc = dt.to(options);
  torch::Tensor xdt = x.to(options) * dtc.unsqueeze(-1);  // [B,T,H,P]
  torch::Tensor log_decay = dtc * a.to(options);          // [B,T,H]
  torch::Tensor bc = b.to(options);
  torch::Tensor cc = c.to(options);
  if (pad > 0) {
    // Padded steps have dt = 0: decay exp(0) = 1 and no input, so they leave the state alone
    // and the final state is the one after the last real token.
    xdt = torch::constant_pad_nd(xdt, {0, 0, 0, 0, 0, pad});
    log_decay = torch::constant_pad_nd(log_decay, {0, 0, 0, pad});
    bc = torch::constant_pad_nd(bc, {0, 0, 0, pad});
    cc = torch::constant_pad_nd(cc, {0, 0, 0, pad});
  }
  // Layout [B, H, chunk, position in chunk, ...]; B and C have no head axis (one group).
  torch::Tensor xs = xdt.reshape({batch, n_chunks, q, heads, head_dim}).permute({0, 3, 1, 2, 4});
  torch::Tensor decay_log = log_decay.reshape({batch, n_chunks, q, heads}).permute({0, 3, 1, 2});
  torch::Tensor bs = bc.reshape({batch, 1, n_chunks, q, d_state});
  torch::Tensor cs = cc.reshape({batch, 1, n_chunks, q, d_state});
  torch::Tensor cumulative = decay_log.cumsum(-1);  // [B,H,nc,q]

  // 1. Within each chunk: the quadratic form y_l = sum_{s<=l} C_l.B_s exp(sum a dt over
  //    (s, l]) dt_s x_s, i.e. masked attention with decay in place of softmax.
  torch::Tensor scores = torch::matmul(cs, bs.transpose(-1, -2));  // [B,1,nc,l,s]
  torch::Tensor weights = scores * torch::exp(SegmentSum(decay_log));
  torch::Tensor y = torch::matmul(weights, xs);  // [B,H,nc,q,P]

  // 2. Each chunk's contribution to the state at its end, from a zero start.
  torch::Tensor to_end = torch::exp(cumulative.narrow(-1, q - 1, 1) - cumulative);  // [B,H,nc,q]
  torch::Tensor chunk_states =
      torch::matmul((xs * to_end.unsqueeze(-1)).transpose(-1, -2), bs);  // [B,H,nc,P,N]

  // 3. The state entering each chunk: a linear recurrence over chunks. A loop keeps it linear
  //    in the number of chunks (the listing's segsum over chunks is quadratic in it).
  torch::Tensor chunk_decay = torch::exp(cumulative.select(-1, q - 1));  // [B,H,nc]
  std::vector<torch::Tensor> entering;
  entering.reserve(static_cast<size_t>(n_chunks));
  for (int64_t chunk_idx = 0; chunk_idx < n_chunks; ++chunk_idx) {
    entering.push_back(state);
    state = chunk_decay.select(-1, chunk_idx).unsqueeze(-1).unsqueeze(-1) * state +
            chunk_states.select(2, chunk_idx);
  }
  if (final_state != nullptr) *final_state = state;

  // 4. The entering state read out through C, decayed to each position.
  torch::Tensor states_in = torch::stack(entering, /*dim=*/2);  // [B,H,nc,P,N]
  y = y + torch::matmul(cs, states_in.transpose(-1, -2)) * torch::exp(cumulative).unsqueeze(-1);

  y = y.permute({0, 2, 3, 1, 4}).reshape({batch, n_chunks * q, heads, head_dim});
  if (pad > 0) y = y.index({Slice(), Slice(0, tokens)});
  return y.to(x.scalar_type());
}

}  // namespace scalelab::model::ssd
