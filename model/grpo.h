// The tensor math of GRPO (Shao et al. 2024, DeepSeekMath), with the variants the run contract
// offers (v1::GrpoSpec): group-relative advantages with or without the std division (Dr. GRPO,
// Liu et al. 2025), the clipped surrogate with separate lower and upper clip ranges (DAPO's
// clip-higher, Yu et al. 2025), three loss normalisations and the k3 KL estimator to a frozen
// reference (Schulman 2020). Pure functions of tensors: no model, no sampling, no optimizer; the
// loop (model/loops/grpo_loop.h) feeds them. Everything works on any device and dtype float32.
//
// Shapes: B completions (P prompts x G samples, prompt-major), T completion positions (the
// longest completion; shorter ones are right-padded and masked out), V vocabulary.

#ifndef SCALELAB_MODEL_GRPO_H_
#define SCALELAB_MODEL_GRPO_H_

#include <torch/torch.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace scalelab::model {

enum class AdvantageMode {
  kStd,   // (r - mean) / (std + eps), std the sample (Bessel-corrected) std of the group
  kMean,  // r - mean (Dr. GRPO)
};

enum class LossNorm {
  kSequence,  // each sequence's token mean, then the mean over sequences (GRPO)
  kToken,     // sum over every completion token / total completion tokens (DAPO)
  kFixed,     // sum over every completion token / (B * max_new_tokens) (Dr. GRPO)
};

// grpo.advantage / grpo.loss_norm as runspec validates them; kInvalidArgument naming the field
// and value otherwise.
absl::StatusOr<AdvantageMode> ParseAdvantageMode(absl::string_view name);
absl::StatusOr<LossNorm> ParseLossNorm(absl::string_view name);

// Advantages [P, G] of rewards [P, G] (float). The std is the sample std over the G rewards of a
// group (divisor G - 1), as TRL's GRPOTrainer computes it (torch's default std); G must be >= 2.
// A group whose rewards are all equal gets advantage 0 in either mode.
torch::Tensor GroupAdvantages(const torch::Tensor& rewards, AdvantageMode mode, double eps);

// Groups [P, G] whose rewards are all equal (their advantages are 0: no learning signal).
int64_t CountZeroAdvantageGroups(const torch::Tensor& rewards);

// log softmax(logits / temperature) at `targets`: logits [B, T, V], targets int64 [B, T] ->
// [B, T]. Differentiable in logits.
torch::Tensor TokenLogProbs(const torch::Tensor& logits, const torch::Tensor& targets,
                            double temperature = 1.0);

// Entropy in nats of softmax(logits / temperature) at each position: [B, T, V] -> [B, T].
torch::Tensor TokenEntropy(const torch::Tensor& logits, double temperature = 1.0);

struct SurrogateOptions {
  double clip_low = 0.2;   // epsilon_low: the ratio is clipped below at 1 - clip_low
  double clip_high = 0.2;  // epsilon_high: ... and above at 1 + clip_high
  LossNorm norm = LossNorm::kSequence;
  int64_t max_new_tokens = 16;  // kFixed's per-sequence length
  double beta = 0;              // KL coefficient; 0 = no KL term (ref_logprobs may be undefined)
};

struct SurrogateLoss {
  torch::Tensor loss;  // scalar: the normalised per-token loss (surrogate + beta * k3); has the
                       // graph of `logprobs`
  // Statistics over the masked tokens (no gradient), plain numbers:
  double clip_frac = 0;  // fraction of tokens whose clipped term was the minimum and differs
                         // from the unclipped one: ratio < 1 - clip_low with A < 0, or
                         // ratio > 1 + clip_high with A > 0 (their gradient is 0)
  double kl = 0;         // mean k3 over tokens; 0 when beta is 0
  double tokens = 0;     // masked tokens counted
};

// The clipped surrogate of GRPO. logprobs [B, T] (current policy, with grad), old_logprobs
// [B, T] (the sampling policy, no grad), advantages [B] (one per sequence), mask [B, T] (1.0 on
// completion tokens, 0.0 on padding), ref_logprobs [B, T] (the reference model; only read when
// beta > 0). Per token:
//   ratio = exp(logp - logp_old)
//   l     = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)
//           + beta * (exp(ref - logp) - (ref - logp) - 1)
// then normalised by options.norm. A sequence without tokens counts as a zero loss in kSequence.
SurrogateLoss ClippedSurrogate(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask,
                               const torch::Tensor& ref_logprobs, const SurrogateOptions& options);

// Mean of values [B, T] over mask [B, T]; 0 for an empty mask.
double MaskedMean(const torch::Tensor& values, const torch::Tensor& mask);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_GRPO_H_
