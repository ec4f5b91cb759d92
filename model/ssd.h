// The state-space duality (SSD) scan of Mamba-2 (Dao & Gu 2024, "Transformers are SSMs"): a
// selective scan with a scalar decay per head and one B/C group shared by all heads.
//
// Three implementations of one recurrence, which agree to rounding (fp32, rtol 1e-4):
//   ScanNaive    the sequential loop over T: the definition the others are tested against;
//   ScanChunked  the chunked SSD algorithm (training and prompts): quadratic attention-like work
//                within each chunk, a linear recurrence over chunk states between chunks;
//   Step         one token of the recurrence (incremental decoding).
// ScanChunked on CUDA tensors without autograd (prompts in generation) runs the SSD kernels of
// kernels/ssd_scan.cuh when built with them (model/ops_cuda.h); with autograd it stays the
// composition of LibTorch ops below, which is what training differentiates.
// The decay cumsums are computed in fp32 (fp64 for fp64 inputs) whatever the dtype of x; the
// outputs follow the dtype of x (fp64, fp32, bf16).

#ifndef SCALELAB_MODEL_SSD_H_
#define SCALELAB_MODEL_SSD_H_

#include <torch/torch.h>

#include <cstdint>

namespace scalelab::model::ssd {

// Shapes: x [B,T,H,P]; dt [B,T,H] (already softplus'ed, > 0); a [H] (negative: -exp(A_log));
// b, c [B,T,N] (one group shared by all heads); initial_state [B,H,P,N] or undefined (= zeros).
// y_t = C_t . h_t with h_t = exp(dt_t a) h_{t-1} + dt_t x_t B_t^T   (no D skip here).
// Returns y [B,T,H,P] in the dtype of x; writes the state after the last token to *final_state
// when non-null, in fp32 (fp64 when x is fp64). All three agree (fp32, rtol 1e-4).
torch::Tensor ScanNaive(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                        const torch::Tensor& b, const torch::Tensor& c,
                        const torch::Tensor& initial_state, torch::Tensor* final_state);

// The chunked scan; T need not be a multiple of `chunk` (the last chunk is zero-padded).
// Adds ChunkedScanMacs(B, T, H, P, N, chunk) to the active ops::MacCounter.
torch::Tensor ScanChunked(const torch::Tensor& x, const torch::Tensor& dt, const torch::Tensor& a,
                          const torch::Tensor& b, const torch::Tensor& c, int64_t chunk,
                          const torch::Tensor& initial_state, torch::Tensor* final_state);

// One token: x_t [B,H,P], dt_t [B,H], b_t, c_t [B,N]; state [B,H,P,N] updated in place.
// Inference only: the in-place update cannot be differentiated through (ScanNaive can).
torch::Tensor Step(const torch::Tensor& x_t, const torch::Tensor& dt_t, const torch::Tensor& a,
                   const torch::Tensor& b_t, const torch::Tensor& c_t, torch::Tensor& state);

// Multiply-adds ScanChunked counts for these sizes: with q = min(chunk, tokens) and
// n = ceil(tokens / q) chunks (the last zero-padded), batch * n * (q*q*N + H*q*q*P + 2*H*q*P*N
// + H*P*N): C B^T (shared by the heads), the masked scores times x, each chunk's state, its
// readout, and the state carried between chunks. Dense: the causal mask does not halve them.
int64_t ChunkedScanMacs(int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                        int64_t d_state, int64_t chunk);

}  // namespace scalelab::model::ssd

#endif  // SCALELAB_MODEL_SSD_H_
