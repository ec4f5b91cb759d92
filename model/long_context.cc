#include "model/long_context.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <new>

#include "absl/strings/str_cat.h"
#include "model/generation_internal.h"

namespace scalelab::model {
namespace {

constexpr char kKeys[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr char kValues[] = "0123456789";
constexpr char kFiller[] = "!\"#$%&'()*+,-./;<=>?@[\\]^_`{|}~";
constexpr int64_t kNumFiller = sizeof(kFiller) - 1;
constexpr int64_t kSeparator = ':';
static_assert(sizeof(kKeys) - 1 == kMaxRecallPairs);

// SplitMixRng (SplitMix64): a tiny generator whose output is the same on every platform and
// standard library (std:: distributions are not), so examples are reproducible across machines.
class SplitMixRng {
 public:
  explicit SplitMixRng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, n) for n far below 2^64 (the modulo bias is < 2^-58).
  int64_t Below(int64_t n) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(n)); }

 private:
  uint64_t state_;
};

absl::Status CheckShape(int64_t context_len, int64_t pairs) {
  if (pairs < 1 || pairs > kMaxRecallPairs) {
    return absl::InvalidArgumentError(absl::StrCat("recall pairs: expected an integer in [1, ",
                                                   kMaxRecallPairs, "], got ", pairs));
  }
  if (context_len < 3 * pairs + 3) {
    return absl::InvalidArgumentError(absl::StrCat("recall context_len: expected at least 3 * ",
                                                   pairs, " + 3 = ", 3 * pairs + 3, " tokens, got ",
                                                   context_len));
  }
  return absl::OkStatus();
}

// Fills `result` (accuracy, value_loss) from examples scored in batches; may throw LibTorch
// errors.
void ScoreExamples(CausalLM& model, const std::vector<RecallExample>& examples,
                   RecallResult& result) {
  const int64_t context_len = result.context_len;
  const int64_t count = static_cast<int64_t>(examples.size());
  const int64_t batch_size = std::max<int64_t>(1, kRecallBatchTokens / context_len);
  const torch::Device device = generation_internal::DeviceOf(model);
  int64_t correct = 0;
  double loss_sum = 0;
  for (int64_t first = 0; first < count; first += batch_size) {
    const int64_t rows = std::min(batch_size, count - first);
    torch::Tensor tokens = torch::empty({rows, context_len}, torch::kLong);
    torch::Tensor values = torch::empty({rows}, torch::kLong);
    for (int64_t row = 0; row < rows; ++row) {
      const RecallExample& example = examples[first + row];
      std::copy(example.tokens.begin(), example.tokens.end(), tokens[row].data_ptr<int64_t>());
      values[row] = example.value;
    }
    const torch::Tensor logits = model.forward(tokens.to(device));
    const torch::Tensor last = logits.select(1, context_len - 1).to(torch::kCPU, torch::kFloat32);
    const torch::Tensor log_probs = torch::log_softmax(last, -1);
    correct += last.argmax(-1).eq(values).sum().item<int64_t>();
    loss_sum -= log_probs.gather(1, values.unsqueeze(1)).sum().item<double>();
  }
  result.accuracy = static_cast<double>(correct) / static_cast<double>(count);
  result.value_loss = loss_sum / static_cast<double>(count);
}

}  // namespace

absl::StatusOr<RecallExample> MakeRecallExample(int64_t context_len, int64_t pairs, uint64_t seed,
                                                int64_t example_idx) {
  if (absl::Status status = CheckShape(context_len, pairs); !status.ok()) return status;
  RecallExample example;
  example.tokens.reserve(static_cast<size_t>(context_len));
  // Each example has its own stream, so example i does not depend on how many came before.
  SplitMixRng rng(seed ^ (0x5851f42d4c957f2dULL * static_cast<uint64_t>(example_idx + 1)));
  std::array<char, kMaxRecallPairs> keys;
  std::copy(kKeys, kKeys + kMaxRecallPairs, keys.begin());
  std::vector<int64_t> values;
  for (int64_t pair_idx = 0; pair_idx < pairs; ++pair_idx) {
    // A partial Fisher-Yates shuffle: the first `pairs` keys are distinct.
    std::swap(keys[pair_idx], keys[pair_idx + rng.Below(kMaxRecallPairs - pair_idx)]);
    values.push_back(kValues[rng.Below(10)]);
    example.tokens.push_back(keys[pair_idx]);
    example.tokens.push_back(kSeparator);
    example.tokens.push_back(values.back());
  }
  const int64_t query = rng.Below(pairs);
  // The filler is one fixed stream per seed, the same in every example, so examples differ only
  // in what is to be recalled.
  SplitMixRng filler(seed ^ 0xd1b54a32d192ed03ULL);
  while (static_cast<int64_t>(example.tokens.size()) < context_len - 2) {
    example.tokens.push_back(kFiller[filler.Below(kNumFiller)]);
  }
  example.tokens.push_back(keys[query]);
  example.tokens.push_back(kSeparator);
  example.value = values[query];
  return example;
}

absl::StatusOr<RecallResult> ScoreRecall(CausalLM& model, int64_t context_len, int64_t pairs,
                                         int64_t examples, uint64_t seed, int64_t vocab_size) {
  if (absl::Status status = CheckShape(context_len, pairs); !status.ok()) return status;
  if (examples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("recall examples: expected an integer >= 1, got ", examples));
  }
  if (vocab_size < 128) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.vocab_size: recall uses ASCII byte tokens, expected >= 128, got ", vocab_size));
  }
  RecallResult result;
  result.context_len = context_len;
  result.examples = examples;
  if (context_len > model.MaxSeqLen()) {
    result.skipped = true;
    return result;
  }
  std::vector<RecallExample> batch;
  for (int64_t example_idx = 0; example_idx < examples; ++example_idx) {
    absl::StatusOr<RecallExample> example =
        MakeRecallExample(context_len, pairs, seed, example_idx);
    if (!example.ok()) return example.status();
    batch.push_back(*std::move(example));
  }
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  absl::Status status;
  try {
    ScoreExamples(model, batch, result);
  } catch (const c10::OutOfMemoryError& error) {
    status = absl::ResourceExhaustedError(absl::StrCat(
        "recall at ", context_len, " tokens: out of memory: ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    status = absl::InternalError(absl::StrCat(
        "recall at ", context_len, " tokens: LibTorch error: ", error.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    status = absl::ResourceExhaustedError(
        absl::StrCat("recall at ", context_len, " tokens: out of host memory"));
  }
  model.train(was_training);
  if (!status.ok()) return status;
  return result;
}

absl::StatusOr<std::vector<std::pair<std::string, double>>> RecallMetrics(CausalLM& model,
                                                                          const TrainPlan& plan,
                                                                          int64_t vocab_size) {
  std::vector<std::pair<std::string, double>> metrics;
  for (int64_t length : plan.recall_lengths) {
    absl::StatusOr<RecallResult> result =
        ScoreRecall(model, length, plan.recall_pairs, plan.recall_examples, plan.seed, vocab_size);
    if (!result.ok()) return result.status();
    if (result->skipped) continue;
    metrics.emplace_back(absl::StrCat("recall_acc/", length), result->accuracy);
    metrics.emplace_back(absl::StrCat("recall_loss/", length), result->value_loss);
  }
  return metrics;
}

}  // namespace scalelab::model
