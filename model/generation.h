// Autoregressive generation from any CausalLM: greedy or sampled (temperature, top-k, top-p),
// with the incremental path (KV cache / recurrent state through CausalLM::ForwardStep) or the
// reference path (forward() over the whole sequence at every step). Both paths pick the same
// tokens for greedy decoding; the tests hold every registered family to that.
//
// Batching: prompts of equal length advance together through one InferenceState, one
// ForwardStep per new token for the whole group. Prompts of different lengths go into separate
// groups, because an InferenceState has a single `position` shared by all its rows: rows of
// different lengths would need per-row positions (RoPE, position embeddings) and per-row masks
// over padded caches, which the CausalLM contract does not offer. Groups run one after another.
//
// Not thread-safe: the model is switched to eval mode for the call (and its training mode
// restored afterwards), so one thread at a time.

#ifndef SCALELAB_MODEL_GENERATION_H_
#define SCALELAB_MODEL_GENERATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

// Torch-free header (so scalelab-train's main.cc compiles without LibTorch's headers): include
// model/causal_lm.h to call Generate.
class CausalLM;

struct GenerateOptions {
  // Most tokens appended per prompt (stop tokens included, before they are cut). 0 is allowed and
  // returns empty outputs with FinishReason::kLength.
  int64_t max_new_tokens = 64;
  // Logits are divided by it before sampling; 0 means greedy (argmax, no randomness).
  double temperature = 0;
  // Keep only the top_k most likely tokens (ties with the k-th kept too); 0 = off.
  int64_t top_k = 0;
  // Nucleus sampling: keep the smallest set of most likely tokens whose probability sums to at
  // least top_p (after temperature and top-k); 1 = off. Must be in (0, 1].
  double top_p = 1;
  // A sequence finishes as soon as its output ends with one of these (each non-empty). The
  // matched stop tokens are cut from Generation::tokens: callers get the text before the stop
  // marker, as with most completion APIs. Only generated tokens count, never the prompt.
  std::vector<std::vector<int64_t>> stop;
  // Sampling is deterministic given (seed, prompt index, prompt, model): prompt i draws from its
  // own torch CPU generator seeded with a mix of `seed` and i, so a prompt's sample does not
  // depend on which other prompts share its batch. Unused when temperature is 0.
  uint64_t seed = 0;
  // true: incremental decoding through ForwardStep. false: forward() over the whole sequence at
  // each step (quadratic; the reference the cache is checked against).
  bool use_cache = true;

  // kInvalidArgument naming the field and value, e.g. "top_p: expected a value in (0, 1], got 0".
  absl::Status Validate() const;
};

enum class FinishReason {
  kStop,     // The output ended with a stop sequence (cut from tokens).
  kLength,   // max_new_tokens were generated.
  kContext,  // Prompt + output reached the model's MaxSeqLen().
};

// "stop", "length" or "context".
const char* FinishReasonName(FinishReason reason);

struct Generation {
  std::vector<int64_t> tokens;  // Generated tokens only (no prompt), stop sequence cut.
  FinishReason finish_reason = FinishReason::kLength;
};

// One Generation per prompt, in the order of `prompts`. The model may be on any device; tokens
// are sampled on the CPU from the logits moved there, so a seed gives the same tokens on CPU and
// CUDA up to the logits' own numerical differences. Sequences never grow past MaxSeqLen() tokens
// (prompt + output).
// Errors: kInvalidArgument for bad options, or naming the prompt index for an empty prompt, a
// token outside [0, vocab_size) or a prompt longer than MaxSeqLen(); kResourceExhausted when
// memory runs out; kInternal for other LibTorch errors.
absl::StatusOr<std::vector<Generation>> Generate(CausalLM& model,
                                                 const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& options);

// Counters of one GenerateSelfSpeculative call, summed over its prompts. Rows that finished
// are not counted.
struct SelfSpeculativeStats {
  int64_t drafted = 0;        // Draft tokens proposed (per row).
  int64_t accepted = 0;       // Of those, matching the full model's greedy token (per row).
  int64_t verify_passes = 0;  // Passes of layers >= exit_layer (per group of prompts, not row).
  int64_t tokens = 0;         // Tokens generated (per row, stop tokens included).
  // accepted / drafted; 0 when nothing was drafted.
  double AcceptanceRate() const {
    return drafted == 0 ? 0 : static_cast<double>(accepted) / static_cast<double>(drafted);
  }
};

// Self-speculative greedy decoding (LayerSkip, Elhoushi et al. 2024) of a transformer-family
// model, best on one trained with train.layerskip. Each round drafts up to `draft_tokens`
// tokens greedily with the first `exit_layer` blocks + final norm + LM head (their KV cache
// grows as usual), then runs blocks exit_layer.. once over the pending token and the drafts
// (reusing the draft's hidden states at exit_layer and its KV cache below it), keeps the longest
// prefix of drafts matching the full model's greedy tokens plus the full model's next token, and
// cuts every layer's cache back to what was kept. Rows of a batch advance by the shortest
// accepted prefix among them, so they keep one shared position.
//
// The output equals Generate(model, prompts, options) with greedy options token for token (the
// verification pass runs several positions at once, so the logits may differ from one-token
// steps in the last float bits; an exact tie between the top two logits could then break the
// other way). Stop sequences, max_new_tokens and MaxSeqLen() end sequences as in Generate.
// options.use_cache is ignored (the cache is always used). `stats`, when given, is overwritten.
// Errors: those of Generate; kInvalidArgument for a model other than the transformer family,
// options.temperature != 0 (greedy only), exit_layer outside [1, n_layers - 1] or
// draft_tokens < 1.
absl::StatusOr<std::vector<Generation>> GenerateSelfSpeculative(
    CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
    const GenerateOptions& options, int64_t exit_layer, int64_t draft_tokens,
    SelfSpeculativeStats* stats = nullptr);

// The scalelab-train --generate path: sets LibTorch's intra-op threads to
// spec.execution().threads (process-wide), builds spec.config().model on spec.execution().device,
// loads `weights_path` (model/checkpoint.h), byte-encodes `prompt` (token = byte) and generates
// `samples` continuations of it (sample i uses prompt index i for its seed). `generate_s`, when
// given, receives the seconds spent in Generate alone (no model build or weight load). Errors as
// Generate and LoadWeights, plus kInvalidArgument for samples < 1.
absl::StatusOr<std::vector<Generation>> GenerateFromWeights(
    const scalelab::v1::RunSpec& spec, const std::string& weights_path, const std::string& prompt,
    int64_t samples, const GenerateOptions& options, double* generate_s = nullptr);

// Byte tokens as printable text: printable ASCII as is, backslash as "\\", newline as "\n", tab
// as "\t", any other byte (and any token >= 256) as "\xHH" / "\u{N}".
std::string EscapeTokens(const std::vector<int64_t>& tokens);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_GENERATION_H_
