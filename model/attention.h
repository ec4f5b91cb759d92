// Causal self-attention with rotary positions and grouped-query heads, the attention layer of the
// "transformer" and "hybrid" families. Every numeric op goes through model/ops.h.
//
// q, k and v come from one fused projection without bias, d_input -> (n_heads + 2 * n_kv_heads)
// * head_dim; RoPE (rotate-half, base rope_theta) is applied to q and k at their absolute
// positions; query head h reads kv head h / (n_heads / n_kv_heads). The optional out projection
// n_heads * head_dim -> d_output is a residual projection: N(0, 0.02 / sqrt(2 * n_layers)); the
// qkv projection is N(0, 0.02).
//
// With a LayerCache the keys (after RoPE) and values of every consumed token are kept in
// cache->keys / cache->values [B, n_kv_heads, S, head_dim], so a token fed later attends to them
// exactly as forward() over the whole sequence would.

#ifndef SCALELAB_MODEL_ATTENTION_H_
#define SCALELAB_MODEL_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>

#include "model/causal_lm.h"

namespace scalelab::model {

struct AttentionOptions {
  int64_t d_input = 0;     // width of the (normalized) input x
  int64_t n_heads = 0;     // query heads
  int64_t n_kv_heads = 0;  // key/value heads; n_heads must be a multiple
  int64_t head_dim = 0;    // channels per head; even (RoPE rotates pairs)
  double rope_theta = 10000;
  int64_t d_output = 0;  // out projection width; 0 = none (returns n_heads * head_dim channels)
  int64_t n_layers = 1;  // depth of the model, for the out projection's residual init
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);

  // x [B, T, d_input] at positions first_position .. first_position + T - 1 -> [B, T,
  // OutputWidth()]. Without a cache, position t sees tokens 0..t of x (first_position only sets
  // the rotary angles). With one, x also attends to the cached keys and values (which must hold
  // exactly first_position tokens) and appends its own.
  torch::Tensor forward(const torch::Tensor& x, int64_t first_position,
                        LayerCache* cache = nullptr);

  // d_output, or n_heads * head_dim without an out projection.
  int64_t OutputWidth() const;
  const AttentionOptions& options() const { return options_; }

  torch::Tensor qkv_weight;  // [(n_heads + 2 * n_kv_heads) * head_dim, d_input]
  torch::Tensor out_weight;  // [d_output, n_heads * head_dim]; undefined when d_output == 0

 private:
  AttentionOptions options_;
};
TORCH_MODULE(Attention);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_ATTENTION_H_
