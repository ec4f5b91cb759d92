// The Mamba-2 mixer (Dao & Gu 2024) and the "mamba2" model family.
//
// Mixer: in_proj (no bias) d_input -> [z (d_inner), xBC (d_inner + 2N), dt (H)]; a depthwise
// causal conv1d of width d_conv (with bias) over xBC, then SiLU; split x, B, C;
// dt = softplus(dt + dt_bias); A = -exp(A_log); y = SSD(x, dt, A, B, C) + D * x; gated RMSNorm
// y = RMSNorm(y * silu(z)); out_proj d_inner -> d_output (when d_output > 0).
//
// Family "mamba2": x += Mixer(RMSNorm(x)) per layer (no MLP, as the Mamba-2 paper), a final
// RMSNorm and an output head tied to the token embedding.

#ifndef SCALELAB_MODEL_MAMBA2_H_
#define SCALELAB_MODEL_MAMBA2_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "model/causal_lm.h"
#include "model/parts.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

struct Mamba2Options {
  int64_t d_input = 0;  // width of the (normalized) input x
  int64_t d_inner = 0;  // SSM channels = n_ssm_heads * head_dim
  int64_t head_dim = 16, d_state = 16, d_conv = 4, chunk = 64;
  int64_t d_output = 0;  // out-projection width; 0 = no out projection (returns the d_inner
                         // channels after the gated RMSNorm)
  int64_t n_layers = 1;  // residual init scale 1/sqrt(2 n_layers) of the out projection
};

// d_input = spec.d_model(), d_inner = spec.ssm().expand() * width rounded up to a multiple of
// head_dim, d_output = spec.d_model(), the ssm section's sizes.
Mamba2Options Mamba2OptionsFor(const scalelab::v1::ModelSpec& spec, int64_t width);

class Mamba2MixerImpl : public torch::nn::Module {
 public:
  explicit Mamba2MixerImpl(const Mamba2Options& options);
  // x [B,T,d_input] -> [B,T,d_output or d_inner]. Without cache: chunked scan from zero state.
  // With cache: continues from cache->conv_state / ssm_state (zeros when undefined) and leaves
  // the state after the last token there (T may be > 1: a prompt).
  torch::Tensor forward(const torch::Tensor& x, LayerCache* cache = nullptr);
  int64_t OutputWidth() const;

  // Forward multiply-adds per token of one forward() over `tokens` tokens without cache: what
  // ops::MacCounter counts divided by batch * tokens (in_proj, the depthwise conv, the chunked
  // scan of ssd::ChunkedScanMacs, out_proj).
  double MacsPerToken(int64_t tokens) const;

  torch::Tensor in_proj;      // [2 d_inner + 2 d_state + H, d_input] ~ N(0, kInitStd)
  torch::Tensor conv_weight;  // [conv channels = d_inner + 2 d_state, 1, d_conv] (depthwise)
  torch::Tensor conv_bias;    // [conv channels]
  torch::Tensor a_log;        // [H]: A = -exp(a_log), a_log = log(U[1, 16])
  torch::Tensor dt_bias;      // [H]: softplus(dt_bias) log-uniform in [1e-3, 1e-1]
  torch::Tensor d_skip;       // [H], 1
  RmsNorm norm{nullptr};      // the gated RMSNorm over d_inner
  torch::Tensor out_proj;     // [d_output, d_inner] ~ N(0, ResidualInitStd(n_layers)); or none

 private:
  Mamba2Options options_;
  int64_t n_heads_ = 0;
  int64_t conv_channels_ = 0;
};
TORCH_MODULE(Mamba2Mixer);

// Family "mamba2"; the spec has passed runspec's rules and defaults. Its CausalLM:
//   NumNonEmbeddingParams  every parameter but the token embedding (the head is tied);
//   FlopsPerToken          6 x the forward multiply-adds per token at T = seq_len of what ops::
//                          counts: per layer Mamba2MixerImpl::MacsPerToken(seq_len) (in_proj,
//                          conv, chunked scan, out_proj), plus vocab * d_model for the tied head;
//   ParameterGroups        decay: in_proj and out_proj; no decay: the rest;
//   MaxSeqLen              65536, a cap on requests, not a trained limit (the state has a fixed
//                          size); ForwardStep with T > 1 runs the chunked scan from the cached
//                          state, with T = 1 the recurrent step.
std::shared_ptr<CausalLM> BuildMamba2(const scalelab::v1::ModelSpec& spec);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_MAMBA2_H_
