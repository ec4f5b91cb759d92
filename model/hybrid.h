// Attention + Mamba-2 hybrids, the "hybrid" family of model/registry.h. Token embedding, layers,
// final RMSNorm and an output head tied to the embedding, as the other families; the layers
// depend on model.hybrid.mode:
//
//   "sequential"  each layer is either an A layer, a full Transformer block (x += Attn(RMSNorm(x));
//                 x += SwiGLU(RMSNorm(x)); model/transformer.h), or an M layer, a Mamba-2 block
//                 (x += Mamba2Mixer(RMSNorm(x)); model/mamba2.h). The kinds come from
//                 hybrid.pattern, or from hybrid.attn_ratio by SequentialLayerKinds below.
//   "parallel"    every layer runs attention and a Mamba-2 mixer side by side on the same
//                 h = RMSNorm(x) (Hymba-style, Dong et al. 2024), then x += SwiGLU(RMSNorm(x)).
//                 The attention branch has n_attn_heads = clamp(round(n_heads * attn_fraction),
//                 1, n_heads - 1) heads of head_dim d_model / n_heads (width W_a) and, keeping
//                 the model's GQA ratio where it divides, the largest divisor of n_attn_heads not
//                 above round(n_attn_heads * n_kv_heads / n_heads) kv heads; the SSM branch
//                 gets the rest of the width, Mamba2OptionsFor(spec, d_model - W_a). Both branch
//                 outputs are RMS-normalized (the mixer's own gated RMSNorm for the SSM branch, an
//                 RMSNorm for the attention branch) so neither drowns the other, then fused by
//                 hybrid.fuse: "mean" projects each to d_model and averages; "concat" concatenates
//                 them and projects once to d_model. The fused output is added to x.
//
// Attention layers use RoPE, so MaxSeqLen() is kRotaryMaxSeqLen as for the Transformer. Init as
// the other families: N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 n_layers)), gains 1.

#ifndef SCALELAB_MODEL_HYBRID_H_
#define SCALELAB_MODEL_HYBRID_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

#include "model/attention.h"
#include "model/causal_lm.h"
#include "model/mamba2.h"
#include "model/parts.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

// Layer kinds of a sequential hybrid, one letter per layer: 'A' attention, 'M' Mamba-2.
// hybrid.pattern when set. Otherwise n_attn = clamp(round(attn_ratio * n_layers), 1, n_layers - 1)
// (1 for a one-layer model) attention layers, placed at the end of n_attn equal stretches:
// layer ceil((i + 1) * n_layers / n_attn) - 1 for i = 0 .. n_attn - 1. So the last layer is
// attention, the first never is (n_attn < n_layers), and the A layers are spread evenly:
// 6 layers, ratio 1/3 -> "MMAMMA"; 8 layers, ratio 0.25 -> "MMMAMMMA"; 4 layers, ratio 0.5 ->
// "MAMA"; 3 layers, ratio 1 -> "MAA".
std::string SequentialLayerKinds(const scalelab::v1::ModelSpec& spec);

// Query heads of the attention branch of a parallel hybrid layer (see above).
int64_t ParallelAttentionHeads(const scalelab::v1::ModelSpec& spec);

// x += Mamba2Mixer(RMSNorm(x)): the M layer of a sequential hybrid.
class MambaBlockImpl : public torch::nn::Module {
 public:
  explicit MambaBlockImpl(const scalelab::v1::ModelSpec& spec);
  torch::Tensor forward(torch::Tensor x, LayerCache* cache = nullptr);

  RmsNorm norm{nullptr};
  Mamba2Mixer mixer{nullptr};
};
TORCH_MODULE(MambaBlock);

// One layer of a parallel hybrid (see the file comment).
class ParallelBlockImpl : public torch::nn::Module {
 public:
  explicit ParallelBlockImpl(const scalelab::v1::ModelSpec& spec);
  // x [B, T, d_model] at positions first_position..; `cache` holds both the attention keys and
  // values and the Mamba-2 states.
  torch::Tensor forward(torch::Tensor x, int64_t first_position, LayerCache* cache = nullptr);
  // Forward multiply-adds per token with `context` tokens in the window.
  double MacsPerToken(int64_t context) const;

  RmsNorm norm{nullptr};
  Attention attn{nullptr};  // without out projection
  RmsNorm attn_out_norm{nullptr};
  Mamba2Mixer ssm{nullptr};  // without out projection
  // fuse "mean": attn_proj [d, W_a] and ssm_proj [d, d_inner]; "concat": fuse_proj
  // [d, W_a + d_inner]. The others stay undefined.
  torch::Tensor attn_proj, ssm_proj, fuse_proj;
  RmsNorm mlp_norm{nullptr};
  SwiGluMlp mlp{nullptr};
};
TORCH_MODULE(ParallelBlock);

class HybridImpl : public CausalLM {
 public:
  explicit HybridImpl(const scalelab::v1::ModelSpec& spec);

  torch::Tensor forward(const torch::Tensor& tokens) override;
  // Everything but the token embedding.
  int64_t NumNonEmbeddingParams() const override;
  // 6 * per-token forward multiply-adds at T = seq_len (see CausalLM): d * vocab for the head
  // plus, per layer,
  //   A: TransformerBlockImpl::MacsPerToken(T) (model/transformer.h);
  //   M: Mamba2MixerImpl::MacsPerToken(T) (model/mamba2.h);
  //   parallel: d (n_a + 2 n_kv) hd + 2 T n_a hd + Mamba2MixerImpl::MacsPerToken(T)
  //             + d (W_a + d_inner) (the fusing projections, the same for "mean" and "concat")
  //             + 3 d hidden,
  // with n_a the branch's query heads, n_kv its key/value heads, hd = d_model / n_heads.
  double FlopsPerToken() const override;
  int64_t MaxSeqLen() const override;
  // decay: the 2-D weight matrices (qkv, projections, in_proj/out_proj, w_gate/w_up/w_down);
  // no_decay: the token embedding, norm gains and the mixers' conv weights and biases, A_log,
  // dt_bias and D.
  ParamGroups ParameterGroups() const override;
  InferenceState NewInferenceState(int64_t batch_size) const override;
  absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor& tokens,
                                            InferenceState& state) override;

  // One letter per layer: 'A' and 'M' (sequential) or 'P' (parallel).
  const std::string& layer_kinds() const { return kinds_; }

 private:
  torch::Tensor Run(const torch::Tensor& tokens, int64_t first_position, InferenceState* state);

  int64_t d_model_;
  int64_t seq_len_;
  int64_t vocab_size_;
  std::string kinds_;
  torch::nn::Embedding token_embedding_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  RmsNorm final_norm_{nullptr};
};
TORCH_MODULE(Hybrid);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_HYBRID_H_
