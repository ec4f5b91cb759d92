// GRPO's tensor math (model/grpo.h) on hand-worked tensors: every expected value below is worked
// out in the comments from the definitions, not with the code under test.

#include "model/grpo.h"

#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "catch2/catch.hpp"

namespace scalelab::model {
namespace {

torch::Tensor Floats(std::initializer_list<float> values) {
  return torch::tensor(std::vector<float>(values), torch::kFloat32);
}

TEST_CASE("GRPO advantages divide by the sample std of each group, or only centre it",
          "[model][grpo]") {
  // Group 0: rewards 1 0 0 1, mean 0.5, deviations +-0.5, squared sum 1, sample variance
  // 1 / (4 - 1) = 1/3, std 0.57735; advantages +-0.5 / 0.57735 = +-0.866025.
  // Group 1: all 1: deviations 0, advantages 0 in both modes.
  // Group 2: rewards 1 0 0 0, mean 0.25, deviations 0.75 -0.25 x3, squared sum
  // 0.5625 + 3 * 0.0625 = 0.75, sample variance 0.25, std 0.5; advantages 1.5 and -0.5.
  const torch::Tensor rewards = Floats({1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0}).reshape({3, 4});
  const torch::Tensor with_std = GroupAdvantages(rewards, AdvantageMode::kStd, 1e-6);
  const float expected_std[3][4] = {
      {0.866025f, -0.866025f, -0.866025f, 0.866025f}, {0, 0, 0, 0}, {1.5f, -0.5f, -0.5f, -0.5f}};
  const torch::Tensor mean_only = GroupAdvantages(rewards, AdvantageMode::kMean, 1e-6);
  const float expected_mean[3][4] = {
      {0.5f, -0.5f, -0.5f, 0.5f}, {0, 0, 0, 0}, {0.75f, -0.25f, -0.25f, -0.25f}};
  for (int group = 0; group < 3; ++group) {
    for (int sample = 0; sample < 4; ++sample) {
      CHECK(with_std[group][sample].item<float>() ==
            Approx(expected_std[group][sample]).margin(1e-5));
      CHECK(mean_only[group][sample].item<float>() ==
            Approx(expected_mean[group][sample]).margin(1e-6));
    }
  }
  CHECK(CountZeroAdvantageGroups(rewards) == 1);
  CHECK(CountZeroAdvantageGroups(Floats({0, 0, 1, 1}).reshape({2, 2})) == 2);
}

TEST_CASE("GRPO token log-probs and entropy follow the tempered softmax", "[model][grpo]") {
  // Logits log(1), log(2), log(1): probabilities 1/4, 1/2, 1/4.
  const torch::Tensor logits = torch::log(Floats({1, 2, 1})).reshape({1, 1, 3}).repeat({1, 2, 1});
  const torch::Tensor targets = torch::tensor({1, 0}, torch::kInt64).reshape({1, 2});
  const torch::Tensor logprobs = TokenLogProbs(logits, targets);
  CHECK(logprobs[0][0].item<float>() == Approx(std::log(0.5)));
  CHECK(logprobs[0][1].item<float>() == Approx(std::log(0.25)));
  // Temperature 2 halves the logits: probabilities proportional to 1, sqrt 2, 1.
  const torch::Tensor tempered = TokenLogProbs(logits, targets, 2.0);
  CHECK(tempered[0][0].item<float>() == Approx(std::log(std::sqrt(2.0) / (2 + std::sqrt(2.0)))));
  // Entropy of (1/4, 1/2, 1/4): 2 * 1/4 * ln 4 + 1/2 * ln 2 = 1.5 ln 2.
  const torch::Tensor entropy = TokenEntropy(logits);
  CHECK(entropy[0][0].item<float>() == Approx(1.5 * std::log(2.0)));
  CHECK(entropy[0][1].item<float>() == Approx(1.5 * std::log(2.0)));
}

// Two completions: row 0 with 2 tokens (a third, padded position with a wild ratio that the mask
// must hide), row 1 with 3 tokens. Advantages +1 and -1. Ratios exp(logp - old):
//   row 0: 1.5, 0.9, (5.0 padded)    row 1: 0.5, 1.1, 1.0
struct Batch {
  torch::Tensor logprobs;
  torch::Tensor old_logprobs;
  torch::Tensor advantages = Floats({1, -1});
  torch::Tensor mask = Floats({1, 1, 0, 1, 1, 1}).reshape({2, 3});
};

Batch MakeBatch() {
  Batch batch;
  batch.old_logprobs = Floats({-1.0f, -2.0f, -0.5f, -1.5f, -0.7f, -3.0f}).reshape({2, 3});
  const torch::Tensor ratios = Floats({1.5f, 0.9f, 5.0f, 0.5f, 1.1f, 1.0f}).reshape({2, 3});
  batch.logprobs = (batch.old_logprobs + torch::log(ratios)).detach().requires_grad_(true);
  return batch;
}

TEST_CASE("The GRPO clipped surrogate matches hand-worked values for each normalisation",
          "[model][grpo]") {
  // clip 0.2 both ways. Per-token loss -min(r A, clip(r) A):
  //   row 0 (A = +1): r 1.5 -> -min(1.5, 1.2) = -1.2 (clipped high); r 0.9 -> -0.9
  //   row 1 (A = -1): r 0.5 -> -min(-0.5, -0.8) = 0.8 (clipped low); r 1.1 -> 1.1; r 1.0 -> 1.0
  // Sum -2.1 + 2.9 = 0.8 over 5 tokens; 2 of them clipped.
  Batch batch = MakeBatch();
  SurrogateOptions options;
  options.clip_low = 0.2;
  options.clip_high = 0.2;
  options.max_new_tokens = 4;

  options.norm = LossNorm::kSequence;  // (-2.1 / 2 + 2.9 / 3) / 2 = -0.0416667
  SurrogateLoss sequence = ClippedSurrogate(batch.logprobs, batch.old_logprobs, batch.advantages,
                                            batch.mask, torch::Tensor(), options);
  CHECK(sequence.loss.item<double>() == Approx((-1.05 + 2.9 / 3) / 2));
  CHECK(sequence.clip_frac == Approx(0.4));
  CHECK(sequence.tokens == 5);
  CHECK(sequence.kl == 0);

  options.norm = LossNorm::kToken;  // 0.8 / 5
  CHECK(ClippedSurrogate(batch.logprobs, batch.old_logprobs, batch.advantages, batch.mask,
                         torch::Tensor(), options)
            .loss.item<double>() == Approx(0.16));

  options.norm = LossNorm::kFixed;  // 0.8 / (2 sequences * 4 max_new_tokens)
  CHECK(ClippedSurrogate(batch.logprobs, batch.old_logprobs, batch.advantages, batch.mask,
                         torch::Tensor(), options)
            .loss.item<double>() == Approx(0.1));

  // Clip-higher (DAPO): clip_high 0.6 lets ratio 1.5 through with A > 0: -1.5 instead of -1.2,
  // sum 0.5 over 5 tokens, 1 token clipped.
  options.norm = LossNorm::kToken;
  options.clip_high = 0.6;
  SurrogateLoss higher = ClippedSurrogate(batch.logprobs, batch.old_logprobs, batch.advantages,
                                          batch.mask, torch::Tensor(), options);
  CHECK(higher.loss.item<double>() == Approx(0.1));
  CHECK(higher.clip_frac == Approx(0.2));
}

TEST_CASE("The GRPO surrogate's gradient vanishes on clipped tokens and scales with the ratio",
          "[model][grpo]") {
  // Sequence normalisation, 2 sequences: d loss / d logp = -A r / (len * 2) where unclipped
  // (d r / d logp = r), 0 where clipped or padded.
  Batch batch = MakeBatch();
  SurrogateOptions options;
  ClippedSurrogate(batch.logprobs, batch.old_logprobs, batch.advantages, batch.mask,
                   torch::Tensor(), options)
      .loss.backward();
  const torch::Tensor grad = batch.logprobs.grad();
  CHECK(grad[0][0].item<float>() == Approx(0).margin(1e-7));  // clipped high
  CHECK(grad[0][1].item<float>() == Approx(-0.9 / 4));
  CHECK(grad[0][2].item<float>() == Approx(0).margin(1e-7));  // padding
  CHECK(grad[1][0].item<float>() == Approx(0).margin(1e-7));  // clipped low
  CHECK(grad[1][1].item<float>() == Approx(1.1 / 6));
  CHECK(grad[1][2].item<float>() == Approx(1.0 / 6));
}

TEST_CASE("The GRPO KL term is beta times the k3 estimator per token", "[model][grpo]") {
  // Advantage 0 and ratio 1: only the KL term. ref - logp = ln 2 -> k3 = 2 - ln 2 - 1 =
  // 0.306853; ref - logp = -ln 2 -> k3 = 0.5 + ln 2 - 1 = 0.193147; ref - logp = 0 -> 0.
  const torch::Tensor logprobs = Floats({-1.0f, -1.0f, -1.0f}).reshape({1, 3});
  const torch::Tensor ref =
      logprobs + Floats({std::log(2.0f), -std::log(2.0f), 0.0f}).reshape({1, 3});
  SurrogateOptions options;
  options.beta = 0.5;
  options.norm = LossNorm::kToken;
  SurrogateLoss loss =
      ClippedSurrogate(logprobs, logprobs, Floats({0}), torch::ones({1, 3}), ref, options);
  const double k3_sum = (1 - std::log(2.0)) + (std::log(2.0) - 0.5);
  CHECK(loss.kl == Approx(k3_sum / 3));
  CHECK(loss.loss.item<double>() == Approx(0.5 * k3_sum / 3));
}

// A policy of free logits over 4 tokens at 2 positions; targets 1 and 2.
double TargetLogProbAfterOneStep(float advantage, double beta) {
  torch::manual_seed(3);
  torch::Tensor logits = torch::randn({1, 2, 4}).requires_grad_(true);
  const torch::Tensor targets = torch::tensor({1, 2}, torch::kInt64).reshape({1, 2});
  const torch::Tensor mask = torch::ones({1, 2});
  const torch::Tensor before = TokenLogProbs(logits, targets).detach();
  // A reference that puts target 1 much lower than the policy does.
  const torch::Tensor ref = before - Floats({2.0f, 0.0f}).reshape({1, 2});
  SurrogateOptions options;
  options.beta = beta;
  torch::optim::SGD sgd({logits}, torch::optim::SGDOptions(0.1));
  const torch::Tensor logprobs = TokenLogProbs(logits, targets);
  ClippedSurrogate(logprobs, logprobs.detach(), Floats({advantage}), mask, ref, options)
      .loss.backward();
  sgd.step();
  const torch::Tensor after = TokenLogProbs(logits, targets).detach();
  return (after - before)[0][0].item<double>();
}

TEST_CASE(
    "One SGD step on the GRPO loss raises a token's log-prob when its advantage is "
    "positive and lowers it when negative; KL pulls it toward the reference",
    "[model][grpo]") {
  CHECK(TargetLogProbAfterOneStep(1.0f, 0) > 1e-3);
  CHECK(TargetLogProbAfterOneStep(-1.0f, 0) < -1e-3);
  CHECK(TargetLogProbAfterOneStep(0.0f, 0) == Approx(0).margin(1e-7));
  // With advantage 0 only the KL term acts: the reference is 2 nats lower on target 1, so the
  // step lowers the policy's log-prob there.
  CHECK(TargetLogProbAfterOneStep(0.0f, 1.0) < -1e-3);
}

TEST_CASE("GRPO option names parse and bad ones are refused naming the field", "[model][grpo]") {
  CHECK(*ParseAdvantageMode("std") == AdvantageMode::kStd);
  CHECK(*ParseAdvantageMode("mean") == AdvantageMode::kMean);
  CHECK(*ParseLossNorm("fixed") == LossNorm::kFixed);
  absl::StatusOr<LossNorm> bad = ParseLossNorm("tokens");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("grpo.loss_norm"));
  CHECK_THAT(std::string(bad.status().message()), Catch::Contains("\"tokens\""));
}

}  // namespace
}  // namespace scalelab::model
