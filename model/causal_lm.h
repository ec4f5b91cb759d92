// The interface every model family implements: a causal (decoder-only) language model over int64
// token ids. Loops, evaluation, checkpoints and (next) generation see models only through it; a
// family is added by implementing it and registering a factory in model/registry.cc.
//
// A CausalLM is a torch::nn::Module, so parameters(), to(device), train()/eval() and
// save()/load() come with it. Init draws from torch's global generator: seed it with
// torch::manual_seed before building for a reproducible model.
//
// Not thread-safe (as every torch::nn module); one thread owns a model at a time.

#ifndef SCALELAB_MODEL_CAUSAL_LM_H_
#define SCALELAB_MODEL_CAUSAL_LM_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "model/ops.h"

namespace scalelab::model {

// Per-layer state carried between ForwardStep calls; each layer uses the fields of its kind and
// leaves the others undefined.
//   attention: keys and values of every token consumed so far, [B, n_kv_heads, tokens_so_far,
//              head_dim]; undefined until the first step.
//   Mamba-2:   conv_state, the last d_conv - 1 inputs of the depthwise convolution
//              [B, conv_channels, d_conv - 1], and ssm_state, the scan state
//              [B, n_ssm_heads, head_dim, d_state]; zeros before the first step.
// A parallel hybrid layer holds both kinds at once.
struct LayerCache {
  torch::Tensor keys;
  torch::Tensor values;
  torch::Tensor conv_state;
  torch::Tensor ssm_state;
};

// Everything incremental decoding needs between steps, for one batch of sequences that advance
// together. Create with CausalLM::NewInferenceState; owned by the caller.
struct InferenceState {
  int64_t batch_size = 0;
  int64_t position = 0;  // Tokens consumed so far per sequence (the next token's position).
  std::vector<LayerCache> layers;
};

// AdamW parameter groups: weight decay applies to `decay` only.
struct ParamGroups {
  std::vector<torch::Tensor> decay;     // 2-D weight matrices of linear layers.
  std::vector<torch::Tensor> no_decay;  // Embeddings, biases, norm gains.
};

class CausalLM : public torch::nn::Module {
 public:
  // tokens: int64 [B, T] with values in [0, vocab_size) and T <= MaxSeqLen().
  // Returns logits, float [B, T, vocab_size]; position t sees tokens 0..t only.
  virtual torch::Tensor forward(const torch::Tensor& tokens) = 0;

  // Mean cross-entropy in nats per token of forward(inputs) against targets (both int64 [B, T]).
  torch::Tensor Loss(const torch::Tensor& inputs, const torch::Tensor& targets) {
    torch::Tensor logits = forward(inputs);
    return ops::CrossEntropy(logits.view({-1, logits.size(-1)}), targets.reshape({-1}));
  }

  // Every parameter, a tied embedding counted once.
  int64_t NumParams() const {
    int64_t total = 0;
    for (const torch::Tensor& parameter : parameters()) total += parameter.numel();
    return total;
  }
  // Parameters without token and position embeddings: the "N" of scaling laws (Kaplan et al.
  // 2020). A tied output head adds none.
  virtual int64_t NumNonEmbeddingParams() const = 0;

  // Training FLOPs per token at full context (T = seq_len): 6 x the forward multiply-adds per
  // token (2 FLOPs per multiply-add; backward = 2 x forward), counting exactly what ops:: counts
  // in one forward pass: every projection (ops::Linear) including the tied output head (d_model *
  // vocab), the dense attention score and value products over the whole window (2 * T *
  // n_heads * head_dim per attention layer, not halved for the causal mask), the SSD scan's
  // contractions and the depthwise conv (ops::AddMacs). Embedding lookups, norms, rotary,
  // softmax and elementwise nonlinearities are not counted. Each family writes its closed form
  // next to its override; tests/model/flops_test.cc checks each against ops::MacCounter. Unlike
  // Kaplan et al.'s 6N this includes the output head, so C/6 is not NumNonEmbeddingParams().
  virtual double FlopsPerToken() const = 0;

  // Longest context forward() and ForwardStep() accept, in tokens.
  virtual int64_t MaxSeqLen() const = 0;

  // Splits parameters() for AdamW; every parameter lands in exactly one group.
  virtual ParamGroups ParameterGroups() const = 0;

  // Empty state for `batch_size` sequences, nothing consumed yet.
  virtual InferenceState NewInferenceState(int64_t batch_size) const = 0;

  // Consumes tokens int64 [state.batch_size, T] (T >= 1: a prompt, then one token at a time) and
  // returns their logits [B, T, vocab_size], equal to the matching positions of forward() over
  // the whole sequence so far. Updates `state` in place. Runs without autograd (inference only).
  // Errors: kInvalidArgument when the batch size differs from the state's;
  // kOutOfRange when state.position + T would exceed MaxSeqLen() (state left unchanged).
  virtual absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor& tokens,
                                                    InferenceState& state) = 0;
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_CAUSAL_LM_H_
