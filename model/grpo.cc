#include "model/grpo.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace scalelab::model {

absl::StatusOr<AdvantageMode> ParseAdvantageMode(absl::string_view name) {
  if (name == "std") return AdvantageMode::kStd;
  if (name == "mean") return AdvantageMode::kMean;
  return absl::InvalidArgumentError(
      absl::StrCat("grpo.advantage: expected \"std\" or \"mean\", got \"", name, "\""));
}

absl::StatusOr<LossNorm> ParseLossNorm(absl::string_view name) {
  if (name == "sequence") return LossNorm::kSequence;
  if (name == "token") return LossNorm::kToken;
  if (name == "fixed") return LossNorm::kFixed;
  return absl::InvalidArgumentError(absl::StrCat(
      "grpo.loss_norm: expected \"sequence\", \"token\" or \"fixed\", got \"", name, "\""));
}

torch::Tensor GroupAdvantages(const torch::Tensor& rewards, AdvantageMode mode, double eps) {
  TORCH_CHECK(rewards.dim() == 2 && rewards.size(1) >= 2, "GroupAdvantages: rewards [P, G>=2]");
  torch::Tensor values = rewards.to(torch::kFloat32);
  torch::Tensor centred = values - values.mean(1, /*keepdim=*/true);
  if (mode == AdvantageMode::kMean) return centred;
  // Bessel-corrected, as torch.std's default that TRL's GRPOTrainer relies on. An all-equal
  // group has centred == 0 and std == 0, so it stays 0 (eps > 0 keeps the division finite).
  const double divisor = static_cast<double>(values.size(1) - 1);
  torch::Tensor std = (centred.square().sum(1, /*keepdim=*/true) / divisor).sqrt();
  return centred / (std + eps);
}

int64_t CountZeroAdvantageGroups(const torch::Tensor& rewards) {
  torch::Tensor highest = std::get<0>(rewards.max(1));
  torch::Tensor lowest = std::get<0>(rewards.min(1));
  return highest.eq(lowest).sum().item<int64_t>();
}

torch::Tensor TokenLogProbs(const torch::Tensor& logits, const torch::Tensor& targets,
                            double temperature) {
  torch::Tensor scaled = logits.to(torch::kFloat32);
  if (temperature != 1.0) scaled = scaled / temperature;
  return torch::log_softmax(scaled, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
}

torch::Tensor TokenEntropy(const torch::Tensor& logits, double temperature) {
  torch::Tensor scaled = logits.to(torch::kFloat32);
  if (temperature != 1.0) scaled = scaled / temperature;
  torch::Tensor log_probs = torch::log_softmax(scaled, -1);
  return -(log_probs.exp() * log_probs).sum(-1);
}

double MaskedMean(const torch::Tensor& values, const torch::Tensor& mask) {
  const double count = mask.sum().item<double>();
  if (count == 0) return 0;
  return (values.to(torch::kFloat32) * mask).sum().item<double>() / count;
}

SurrogateLoss ClippedSurrogate(const torch::Tensor& logprobs, const torch::Tensor& old_logprobs,
                               const torch::Tensor& advantages, const torch::Tensor& mask,
                               const torch::Tensor& ref_logprobs, const SurrogateOptions& options) {
  TORCH_CHECK(logprobs.dim() == 2 && logprobs.sizes() == old_logprobs.sizes() &&
                  logprobs.sizes() == mask.sizes() && advantages.dim() == 1 &&
                  advantages.size(0) == logprobs.size(0),
              "ClippedSurrogate: logprobs, old_logprobs and mask [B, T], advantages [B]");
  const torch::Tensor advantage = advantages.to(logprobs.dtype()).unsqueeze(1);
  const torch::Tensor ratio = torch::exp(logprobs - old_logprobs.detach());
  const torch::Tensor clipped = ratio.clamp(1.0 - options.clip_low, 1.0 + options.clip_high);
  torch::Tensor per_token = -torch::min(ratio * advantage, clipped * advantage);
  torch::Tensor k3;
  if (options.beta > 0) {
    const torch::Tensor delta = ref_logprobs.detach() - logprobs;
    k3 = torch::exp(delta) - delta - 1.0;
    per_token = per_token + options.beta * k3;
  }
  const torch::Tensor masked = per_token * mask;

  SurrogateLoss result;
  switch (options.norm) {
    case LossNorm::kSequence:
      result.loss = (masked.sum(1) / mask.sum(1).clamp_min(1.0)).mean();
      break;
    case LossNorm::kToken:
      result.loss = masked.sum() / mask.sum().clamp_min(1.0);
      break;
    case LossNorm::kFixed:
      result.loss = masked.sum() / static_cast<double>(logprobs.size(0) * options.max_new_tokens);
      break;
  }

  torch::NoGradGuard no_grad;
  result.tokens = mask.sum().item<double>();
  // Tokens where the min picked the clipped term and it differs: there the gradient is cut.
  const torch::Tensor low = ratio.lt(1.0 - options.clip_low).logical_and(advantage.lt(0));
  const torch::Tensor high = ratio.gt(1.0 + options.clip_high).logical_and(advantage.gt(0));
  result.clip_frac = MaskedMean(low.logical_or(high).to(torch::kFloat32), mask);
  if (options.beta > 0) result.kl = MaskedMean(k3.detach(), mask);
  return result;
}

}  // namespace scalelab::model
