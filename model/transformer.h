// A small decoder-only Transformer (GPT-2 layout) in the LibTorch C++ frontend, the "transformer"
// family of model/registry.h:
//   token embedding + learned position embedding
//   n_layers x [x += Attn(LN(x)); x += MLP(LN(x))]   (pre-LayerNorm, causal multi-head attention,
//                                                     GELU MLP)
//   final LayerNorm, output head tied to the token embedding.
// Attention is written out (matmuls, additive causal mask, softmax) rather than taken from a
// fused op, so it reads like the math and runs on LibTorch 1.13. LayerNorms go through
// model/layer_norm.h (the CUDA kernel for fp32 inference on a GPU, torch::layer_norm otherwise).
//
// Built straight from v1::ModelSpec: d_model, n_layers, n_heads, seq_len, d_ff (0 = 4 * d_model)
// and vocab_size. The spec must satisfy runspec's rules (ValidateRunConfig after defaults).
//
// Init: every weight ~ N(0, 0.02), biases 0, LayerNorm gain 1; the two residual output
// projections per block ~ N(0, 0.02 / sqrt(2 * n_layers)) so the residual stream's variance does
// not grow with depth.

#ifndef SCALELAB_MODEL_TRANSFORMER_H_
#define SCALELAB_MODEL_TRANSFORMER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "model/causal_lm.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int64_t d_model, int64_t n_heads, int64_t seq_len);
  // x: [B, T, d_model] -> [B, T, d_model]. Without a cache, T <= seq_len and position t attends
  // to 0..t. With one, x holds the next T positions: they attend to the cached keys and values
  // too, and their own are appended to `cache`.
  torch::Tensor forward(const torch::Tensor& x, LayerCache* cache = nullptr);

  torch::nn::Linear qkv{nullptr};   // d_model -> 3 * d_model (q, k, v side by side).
  torch::nn::Linear proj{nullptr};  // Residual output projection.

 private:
  int64_t n_heads_;
  torch::Tensor causal_mask_;  // [seq_len, seq_len]: 0 on and below the diagonal, -inf above.
};
TORCH_MODULE(CausalSelfAttention);

class TransformerBlockImpl : public torch::nn::Module {
 public:
  TransformerBlockImpl(int64_t d_model, int64_t n_heads, int64_t seq_len, int64_t d_ff);
  torch::Tensor forward(torch::Tensor x, LayerCache* cache = nullptr);

  torch::nn::LayerNorm ln_attn{nullptr};
  CausalSelfAttention attn{nullptr};
  torch::nn::LayerNorm ln_mlp{nullptr};
  torch::nn::Linear fc{nullptr};       // d_model -> d_ff.
  torch::nn::Linear fc_proj{nullptr};  // d_ff -> d_model; residual output projection.
};
TORCH_MODULE(TransformerBlock);

class TransformerImpl : public CausalLM {
 public:
  explicit TransformerImpl(const scalelab::v1::ModelSpec& spec);

  torch::Tensor forward(const torch::Tensor& tokens) override;
  int64_t NumNonEmbeddingParams() const override;
  // 6 * NumNonEmbeddingParams() + 6 * n_layers * seq_len * d_model (see CausalLM).
  double FlopsPerToken() const override;
  int64_t MaxSeqLen() const override { return seq_len_; }
  // decay: the 4 weight matrices per block (qkv, proj, fc, fc_proj); everything else no_decay.
  ParamGroups ParameterGroups() const override;
  // One LayerCache per block; keys and values grow by concatenation (a copy per step, fine for
  // contexts of a few thousand tokens).
  InferenceState NewInferenceState(int64_t batch_size) const override;
  absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor& tokens,
                                            InferenceState& state) override;

  int64_t d_model() const { return d_model_; }
  int64_t n_layers() const { return n_layers_; }
  int64_t d_ff() const { return d_ff_; }

 private:
  // Embeds tokens at positions first_position.., runs every block (each with its cache when
  // `state` is given) and returns the logits.
  torch::Tensor Run(const torch::Tensor& tokens, int64_t first_position, InferenceState* state);

  int64_t d_model_;
  int64_t n_layers_;
  int64_t seq_len_;
  int64_t d_ff_;
  torch::nn::Embedding token_embedding_{nullptr};
  torch::nn::Embedding position_embedding_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_final_{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TRANSFORMER_H_
