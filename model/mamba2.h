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

  // Forward multiply-adds per token over a sequence of `tokens` tokens (batch 1), exactly what
  // ops::MacCounter counts for one forward().
  double MacsPerToken(int64_t tokens) const;
  // Parameters without decay (biases, A_log, dt_bias, D, norm gain, conv weight) and with decay
  // (the projection matrices).
  void AppendParameterGroups(ParamGroups* groups) const;

 private:
  Mamba2Options options_;
  int64_t n_heads_ = 0;
  int64_t conv_channels_ = 0;
  torch::Tensor in_proj_, out_proj_;
  torch::Tensor conv_weight_, conv_bias_;  // [conv_channels, d_conv], [conv_channels]
  torch::Tensor a_log_, dt_bias_, d_;      // [H] each
  torch::Tensor norm_weight_;              // gated RMSNorm gain [d_inner]
};
TORCH_MODULE(Mamba2Mixer);

// Family "mamba2"; the spec has passed runspec's rules and defaults.
std::shared_ptr<CausalLM> BuildMamba2(const scalelab::v1::ModelSpec& spec);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_MAMBA2_H_
