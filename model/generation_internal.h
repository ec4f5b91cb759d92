// Pieces generation.cc shares with self_speculative.cc; not part of the model/ API.

#ifndef SCALELAB_MODEL_GENERATION_INTERNAL_H_
#define SCALELAB_MODEL_GENERATION_INTERNAL_H_

#include <torch/torch.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/generation.h"

namespace scalelab::model::generation_internal {

// The device of the model's first parameter (CPU for a model without parameters).
torch::Device DeviceOf(const CausalLM& model);

// Checks every prompt (non-empty, at most MaxSeqLen() tokens, tokens in the vocabulary) and
// groups their indices by length, shortest first. Errors name the prompt index.
absl::StatusOr<std::map<size_t, std::vector<size_t>>> GroupPromptsByLength(
    CausalLM& model, const std::vector<std::vector<int64_t>>& prompts);

// Decides whether `output`, just grown to `generated` tokens (`total` with the prompt), is
// done, and cuts a matched stop sequence; a stop match wins over the limits since it also ends
// the text.
bool FinishGeneration(Generation& output, const GenerateOptions& options, int64_t generated,
                      int64_t total, int64_t max_seq_len);

// Runs `body` with the model in eval mode and autograd off, restoring its training mode after,
// and turns LibTorch exceptions into statuses (kResourceExhausted, kInternal).
absl::StatusOr<std::vector<Generation>> RunGuarded(
    CausalLM& model, const std::function<absl::StatusOr<std::vector<Generation>>()>& body);

}  // namespace scalelab::model::generation_internal

#endif  // SCALELAB_MODEL_GENERATION_INTERNAL_H_
