// A small decoder-only Transformer (GPT-2 layout) in the LibTorch C++ frontend:
//   token embedding + learned position embedding
//   n_layers x [x += Attn(LN(x)); x += MLP(LN(x))]   (pre-LayerNorm, causal multi-head attention,
//                                                     GELU MLP)
//   final LayerNorm, output head tied to the token embedding.
// Attention is written out (matmuls, additive causal mask, softmax) rather than taken from a
// fused op, so it reads like the math and runs on LibTorch 1.13.
//
// Init: every weight ~ N(0, 0.02), biases 0, LayerNorm gain 1; the two residual output
// projections per block ~ N(0, 0.02 / sqrt(2 * n_layers)) so the residual stream's variance does
// not grow with depth. Init draws from torch's global generator: seed it with torch::manual_seed
// before constructing for a reproducible model.
//
// Not thread-safe (as every torch::nn module); one training thread owns it.

#ifndef SCALELAB_MODEL_TRANSFORMER_H_
#define SCALELAB_MODEL_TRANSFORMER_H_

#include <torch/torch.h>

#include <cstdint>

namespace scalelab::model {

struct TransformerConfig {
  int64_t vocab_size = 256;
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;   // Divides d_model.
  int64_t seq_len = 64;  // Longest context the position embedding covers.
  int64_t d_ff = 256;    // MLP hidden width.
};

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  explicit CausalSelfAttentionImpl(const TransformerConfig& config);
  // x: [B, T, d_model] with T <= seq_len -> [B, T, d_model].
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear qkv{nullptr};   // d_model -> 3 * d_model (q, k, v side by side).
  torch::nn::Linear proj{nullptr};  // Residual output projection.

 private:
  int64_t n_heads_;
  torch::Tensor causal_mask_;  // [seq_len, seq_len]: 0 on and below the diagonal, -inf above.
};
TORCH_MODULE(CausalSelfAttention);

class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const TransformerConfig& config);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::LayerNorm ln_attn{nullptr};
  CausalSelfAttention attn{nullptr};
  torch::nn::LayerNorm ln_mlp{nullptr};
  torch::nn::Linear fc{nullptr};       // d_model -> d_ff.
  torch::nn::Linear fc_proj{nullptr};  // d_ff -> d_model; residual output projection.
};
TORCH_MODULE(TransformerBlock);

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const TransformerConfig& config);

  // tokens: int64 [B, T] with values in [0, vocab_size) and T <= seq_len.
  // Returns logits, float [B, T, vocab_size]; position t sees tokens 0..t only.
  torch::Tensor forward(const torch::Tensor& tokens);

  // Mean cross-entropy in nats per token of forward(inputs) against targets (both [B, T]).
  torch::Tensor Loss(const torch::Tensor& inputs, const torch::Tensor& targets);

  // Parameters without the token and position embeddings (the tied head adds none): the "N" of
  // scaling laws.
  int64_t NumNonEmbeddingParams() const;
  // Every parameter, the tied embedding counted once.
  int64_t NumParams() const;

  // Splits parameters for AdamW: 2-D weight matrices of linear layers get weight decay;
  // embeddings, biases and LayerNorm parameters do not.
  void SplitForWeightDecay(std::vector<torch::Tensor>& decay,
                           std::vector<torch::Tensor>& no_decay) const;

  const TransformerConfig& config() const { return config_; }

 private:
  TransformerConfig config_;
  torch::nn::Embedding token_embedding_{nullptr};
  torch::nn::Embedding position_embedding_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_final_{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TRANSFORMER_H_
