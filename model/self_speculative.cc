// GenerateSelfSpeculative (model/generation.h): drafting with the first exit_layer blocks of a
// transformer and verifying with the rest, as LayerSkip's self-speculative decoding does.
//
// Cache bookkeeping of one round, for a group of rows sharing `processed` = n tokens that every
// layer has consumed and a pending token p (generated, at position n, not consumed yet):
//   draft:  p, d_1, .., d_{k-1} go through blocks [0, E) one at a time; the head on each
//           hidden state h gives d_1 .. d_k. Lower caches: n + k tokens; upper caches: n.
//   verify: d_k goes through blocks [0, E) too (lower caches: n + k + 1); the k + 1 hidden
//           states [h(p), h(d_1), .., h(d_k)] go through blocks [E, L) in one pass at positions
//           n.. (upper caches: n + k + 1); the head gives v_0 .. v_k, v_i the full model's
//           greedy token after position n + i.
//   accept: a = leading i with d_{i+1} == v_i; the round emits d_1 .. d_a, v_a and every layer
//           keeps n + a + 1 tokens (p, d_1 .. d_a); v_a is the next pending token.
// Each emitted token is the full model's greedy token given the tokens before it, which is why
// the output equals plain greedy decoding.

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/causal_lm.h"
#include "model/generation.h"
#include "model/generation_internal.h"
#include "model/transformer.h"

namespace scalelab::model {
namespace {

namespace internal = generation_internal;

class SelfSpeculativeGroup {
 public:
  SelfSpeculativeGroup(TransformerImpl& model, const GenerateOptions& options, int64_t exit_layer,
                       int64_t draft_tokens, torch::Device device, SelfSpeculativeStats& stats)
      : model_(model),
        options_(options),
        exit_layer_(exit_layer),
        n_layers_(model.NumLayers()),
        draft_tokens_(draft_tokens),
        max_seq_len_(model.MaxSeqLen()),
        device_(device),
        stats_(stats) {}

  // Fills outputs[i] for every i in `indices`; all prompts[i] have the same length.
  void Run(const std::vector<std::vector<int64_t>>& prompts, const std::vector<size_t>& indices,
           std::vector<Generation>& outputs) {
    indices_ = &indices;
    outputs_ = &outputs;
    const int64_t batch = static_cast<int64_t>(indices.size());
    const int64_t prompt_len = static_cast<int64_t>(prompts[indices.front()].size());
    finished_.assign(indices.size(), false);
    generated_.assign(indices.size(), 0);
    for (size_t row = 0; row < indices.size(); ++row) {
      Generation& output = outputs[indices[row]];
      if (options_.max_new_tokens == 0) {
        output.finish_reason = FinishReason::kLength;
        finished_[row] = true;
      } else if (prompt_len >= max_seq_len_) {
        output.finish_reason = FinishReason::kContext;
        finished_[row] = true;
      }
    }
    if (AllFinished()) return;

    torch::Tensor sequence = torch::empty({batch, prompt_len}, torch::kLong);
    for (int64_t row = 0; row < batch; ++row) {
      const std::vector<int64_t>& prompt = prompts[indices[static_cast<size_t>(row)]];
      std::copy(prompt.begin(), prompt.end(), sequence[row].data_ptr<int64_t>());
    }
    state_ = model_.NewInferenceState(batch);
    // The prompt through every layer, as Generate's first ForwardStep.
    const torch::Tensor hidden =
        model_.RunLayers(model_.Embed(sequence.to(device_)), 0, 0, n_layers_, &state_);
    // The head over every position, then the last: the very shapes Generate computes.
    const torch::Tensor first = GreedyTokens(model_.Head(hidden).narrow(1, prompt_len - 1, 1));
    int64_t processed = prompt_len;
    std::vector<int64_t> pending(indices.size());
    for (size_t row = 0; row < indices.size(); ++row) {
      pending[row] = first[static_cast<int64_t>(row)][0].item<int64_t>();
      if (!finished_[row]) Emit(row, pending[row], processed + 1);
    }
    while (!AllFinished()) processed = Round(processed, pending);
  }

 private:
  bool AllFinished() const {
    return std::all_of(finished_.begin(), finished_.end(), [](bool done) { return done; });
  }

  // Greedy tokens of logits [B, T, V] as int64 [B, T] on the CPU, picked as Generate picks them
  // (float32 on the CPU) so that equal logits give equal tokens.
  static torch::Tensor GreedyTokens(const torch::Tensor& logits) {
    return logits.to(torch::kCPU, torch::kFloat32).argmax(-1);
  }

  // Appends `token` to row's output (its sequence then `total` tokens long, prompt included).
  void Emit(size_t row, int64_t token, int64_t total) {
    Generation& output = (*outputs_)[(*indices_)[row]];
    output.tokens.push_back(token);
    ++generated_[row];
    ++stats_.tokens;
    finished_[row] =
        internal::FinishGeneration(output, options_, generated_[row], total, max_seq_len_);
  }

  // One draft-and-verify round from `processed` consumed tokens and the pending tokens; returns
  // the new count of consumed tokens and updates `pending`.
  int64_t Round(int64_t processed, std::vector<int64_t>& pending) {
    const int64_t batch = static_cast<int64_t>(pending.size());
    int64_t remaining = 0;  // Tokens the active rows may still emit (they all emitted as many).
    for (size_t row = 0; row < pending.size(); ++row) {
      if (!finished_[row]) remaining = options_.max_new_tokens - generated_[row];
    }
    // A round emits at most drafts + 1 tokens and feeds positions up to processed + drafts.
    const int64_t drafts = std::max<int64_t>(
        0, std::min({draft_tokens_, remaining - 1, max_seq_len_ - processed - 1}));

    torch::Tensor token = torch::tensor(pending, torch::kLong).view({batch, 1}).to(device_);
    std::vector<torch::Tensor> exit_hidden;
    std::vector<torch::Tensor> draft;
    for (int64_t draft_idx = 0; draft_idx < drafts; ++draft_idx) {
      torch::Tensor hidden =
          model_.RunLayers(model_.Embed(token), processed + draft_idx, 0, exit_layer_, &state_);
      exit_hidden.push_back(hidden);
      token = model_.Head(hidden).argmax(-1);  // [B, 1], on the device: no sync per draft.
      draft.push_back(token);
    }
    exit_hidden.push_back(
        model_.RunLayers(model_.Embed(token), processed + drafts, 0, exit_layer_, &state_));
    const torch::Tensor verified_tensor = GreedyTokens(model_.Head(
        model_.RunLayers(torch::cat(exit_hidden, 1), processed, exit_layer_, n_layers_, &state_)));
    ++stats_.verify_passes;
    const torch::Tensor drafted_tensor =
        drafts > 0 ? torch::cat(draft, 1).to(torch::kCPU) : torch::empty({batch, 0}, torch::kLong);
    const auto drafted = drafted_tensor.accessor<int64_t, 2>();
    const auto verified = verified_tensor.accessor<int64_t, 2>();

    // The shortest accepted prefix among the active rows sets how far all rows advance.
    int64_t advance = drafts;
    for (size_t row = 0; row < pending.size(); ++row) {
      if (finished_[row]) continue;
      const int64_t r = static_cast<int64_t>(row);
      int64_t accepted = 0;
      while (accepted < drafts && drafted[r][accepted] == verified[r][accepted]) {
        ++accepted;
      }
      stats_.drafted += drafts;
      stats_.accepted += accepted;
      advance = std::min(advance, accepted);
    }
    for (size_t row = 0; row < pending.size(); ++row) {
      const int64_t r = static_cast<int64_t>(row);
      for (int64_t emit_idx = 0; emit_idx <= advance && !finished_[row]; ++emit_idx) {
        // Up to `advance` the draft equals the verified token; the last is the full model's.
        Emit(row, verified[r][emit_idx], processed + 1 + emit_idx + 1);
      }
      pending[row] = verified[r][advance];
    }
    // Every layer keeps the pending token and the accepted drafts; the rest is rolled back.
    const int64_t kept = processed + advance + 1;
    TruncateLayerCaches(state_, 0, n_layers_, kept);
    return kept;
  }

  TransformerImpl& model_;
  const GenerateOptions& options_;
  const int64_t exit_layer_;
  const int64_t n_layers_;
  const int64_t draft_tokens_;
  const int64_t max_seq_len_;
  const torch::Device device_;
  SelfSpeculativeStats& stats_;
  const std::vector<size_t>* indices_ = nullptr;
  std::vector<Generation>* outputs_ = nullptr;
  InferenceState state_;
  std::vector<bool> finished_;
  std::vector<int64_t> generated_;
};

}  // namespace

absl::StatusOr<std::vector<Generation>> GenerateSelfSpeculative(
    CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
    const GenerateOptions& options, int64_t exit_layer, int64_t draft_tokens,
    SelfSpeculativeStats* stats) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  auto* transformer = dynamic_cast<TransformerImpl*>(&model);
  if (transformer == nullptr) {
    return absl::InvalidArgumentError(
        "GenerateSelfSpeculative: expected a model of the \"transformer\" family (drafting "
        "runs its first blocks)");
  }
  if (options.temperature != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature: expected 0 (self-speculative decoding is greedy), got ",
                     options.temperature));
  }
  const int64_t n_layers = transformer->NumLayers();
  if (exit_layer < 1 || exit_layer >= n_layers) {
    return absl::InvalidArgumentError(absl::StrCat("exit_layer: expected a layer in [1, ",
                                                   n_layers - 1, "] (the model has ", n_layers,
                                                   " layers), got ", exit_layer));
  }
  if (draft_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("draft_tokens: expected an integer >= 1, got ", draft_tokens));
  }
  SelfSpeculativeStats counted;
  absl::StatusOr<std::vector<Generation>> result =
      internal::RunGuarded(model, [&]() -> absl::StatusOr<std::vector<Generation>> {
        absl::StatusOr<std::map<size_t, std::vector<size_t>>> groups =
            internal::GroupPromptsByLength(model, prompts);
        if (!groups.ok()) return groups.status();
        std::vector<Generation> outputs(prompts.size());
        SelfSpeculativeGroup group(*transformer, options, exit_layer, draft_tokens,
                                   internal::DeviceOf(model), counted);
        for (const auto& [length, indices] : *groups) group.Run(prompts, indices, outputs);
        return outputs;
      });
  if (stats != nullptr) *stats = counted;
  return result;
}

}  // namespace scalelab::model
