// A decoder-only Transformer in the Llama layout, the "transformer" family of model/registry.h:
//   token embedding (no position embedding: RoPE inside attention carries position)
//   n_layers x [x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x))]
//   final RMSNorm, output head tied to the token embedding (logits = x E^T).
// No biases anywhere. Attention is causal, rotary (base rope_theta) and grouped-query (n_kv_heads
// key/value heads); see model/attention.h. Every numeric op goes through model/ops.h.
//
// Built straight from v1::ModelSpec: d_model, n_layers, n_heads, n_kv_heads, rope_theta, d_ff
// (0 = SwiGluHidden), vocab_size; seq_len only sets the context of FlopsPerToken. The spec must
// satisfy runspec's rules (ValidateRunConfig after defaults).
//
// Init: weights and the embedding ~ N(0, 0.02); the residual output projections (attention out,
// w_down) ~ N(0, 0.02 / sqrt(2 * n_layers)); norm gains 1.
//
// LayerSkip (model/layerskip.h): LayerSkipLoss trains with layer dropout and early-exit losses;
// Embed, RunLayers and Head expose the pieces self-speculative decoding (model/generation.h)
// composes: a draft from the first E layers through the shared head, verified by the rest.

#ifndef SCALELAB_MODEL_TRANSFORMER_H_
#define SCALELAB_MODEL_TRANSFORMER_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>

#include "model/attention.h"
#include "model/causal_lm.h"
#include "model/parts.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

// Longest context a rotary model accepts (forward and ForwardStep). RoPE has no trained length
// limit, so this is not seq_len: long-context evaluation runs past the training context. The cap
// keeps a mistaken length from allocating a [T, T] score matrix per head without bound.
inline constexpr int64_t kRotaryMaxSeqLen = 65536;

// AttentionOptions of a full-width attention layer of `spec` with an out projection to d_model.
AttentionOptions AttentionOptionsFor(const scalelab::v1::ModelSpec& spec);

// Checks ForwardStep's arguments against `state` and `max_seq_len` (the errors of causal_lm.h).
absl::Status CheckStepArguments(const torch::Tensor& tokens, const InferenceState& state,
                                int64_t max_seq_len);

// Cuts the attention caches of layers [begin, end) of `state` to their first `length` tokens
// (a no-op for a layer holding no more). Self-speculative decoding rolls rejected drafts back
// with it. Leaves state.position alone.
void TruncateLayerCaches(InferenceState& state, int64_t begin, int64_t end, int64_t length);

// One pre-norm block: x += Attn(RMSNorm(x)); x += SwiGLU(RMSNorm(x)).
class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const scalelab::v1::ModelSpec& spec);
  // x [B, T, d_model] at positions first_position..; `cache` as in AttentionImpl::forward.
  torch::Tensor forward(torch::Tensor x, int64_t first_position, LayerCache* cache = nullptr);
  // Forward multiply-adds per token with `context` tokens in the attention window.
  double MacsPerToken(int64_t context) const;

  RmsNorm attn_norm{nullptr};
  Attention attn{nullptr};
  RmsNorm mlp_norm{nullptr};
  SwiGluMlp mlp{nullptr};
};
TORCH_MODULE(TransformerBlock);

class TransformerImpl : public CausalLM {
 public:
  explicit TransformerImpl(const scalelab::v1::ModelSpec& spec);

  torch::Tensor forward(const torch::Tensor& tokens) override;
  // Everything but the token embedding (the tied head adds none).
  int64_t NumNonEmbeddingParams() const override;
  // 6 * per-token forward multiply-adds at T = seq_len (see CausalLM), with hd = d_model /
  // n_heads, hidden = SwiGluHidden(spec):
  //   n_layers * [d (n_heads + 2 n_kv_heads) hd + n_heads hd d + 3 d hidden + 2 T n_heads hd]
  //   + d * vocab.
  double FlopsPerToken() const override;
  int64_t MaxSeqLen() const override { return kRotaryMaxSeqLen; }
  // decay: the 2-D weight matrices of the blocks (qkv, attention out, w_gate, w_up, w_down);
  // no_decay: the token embedding and the norm gains.
  ParamGroups ParameterGroups() const override;
  // One LayerCache per block; keys and values grow by concatenation (a copy per step, fine for
  // contexts of a few thousand tokens).
  InferenceState NewInferenceState(int64_t batch_size) const override;
  absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor& tokens,
                                            InferenceState& state) override;

  // The LayerSkip training loss of model/layerskip.h at step `step` (0-based) of `total_steps`:
  // sum_l w_l CE(Head(h_l)) over the blocks' outputs h_l, with layer dropout per sample (each
  // row of `inputs` skips block l with probability p_l, drawn from torch's global generator) in
  // training mode only; in eval mode every block runs. inputs and targets int64 [B, T]. With
  // max_dropout 0 and exit_scale 0 it is exactly Loss(inputs, targets).
  torch::Tensor LayerSkipLoss(const torch::Tensor& inputs, const torch::Tensor& targets,
                              const scalelab::v1::LayerSkipSpec& spec, int64_t step,
                              int64_t total_steps);

  // tokens int64 [B, T] -> embeddings [B, T, d_model].
  torch::Tensor Embed(const torch::Tensor& tokens);
  // Runs blocks [begin, end) on x [B, T, d_model] at positions first_position..; with `state`,
  // block l reads and extends state->layers[l] (which must hold first_position tokens). Does not
  // touch state->position. Autograd as the caller's mode.
  torch::Tensor RunLayers(torch::Tensor x, int64_t first_position, int64_t begin, int64_t end,
                          InferenceState* state);
  // Final RMSNorm and the tied LM head: hidden [B, T, d_model] -> logits [B, T, vocab_size].
  torch::Tensor Head(const torch::Tensor& hidden);
  int64_t NumLayers() const { return n_layers_; }

 private:
  // Embeds tokens at positions first_position.., runs every block (each with its cache when
  // `state` is given) and returns the logits.
  torch::Tensor Run(const torch::Tensor& tokens, int64_t first_position, InferenceState* state);

  int64_t d_model_;
  int64_t n_layers_;
  int64_t seq_len_;
  int64_t vocab_size_;
  torch::nn::Embedding token_embedding_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  RmsNorm final_norm_{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TRANSFORMER_H_
