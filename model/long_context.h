// Long-context measures beyond the validation loss (whose per-position-bucket split lives in
// model/evaluation.h): synthetic associative recall, which asks whether a model can fetch a
// value it saw many tokens ago.
//
// Example layout (byte tokens; all ranges disjoint, so the answer is unambiguous):
//   k1 ':' v1  k2 ':' v2  ...  kP ':' vP   filler...   kq ':'
//   keys: 'a'..'z' then 'A'..'Z' (pairs distinct keys, so at most 52 pairs); values: '0'..'9';
//   filler: printable punctuation other than ':' (one random stream per call, drawn from the
//   seed, shared by every example of the call); kq is one of the P keys.
// The example is exactly context_len tokens (3 * pairs tokens of pairs, context_len - 3 * pairs
// - 2 of filler, 2 of query); the model is right when the argmax of its logits at the last
// position (after kq ':') is kq's value. Chance is 1/10 for a model that only knows it must
// answer with a digit.
//
// Not thread-safe (runs the model).

#ifndef SCALELAB_MODEL_LONG_CONTEXT_H_
#define SCALELAB_MODEL_LONG_CONTEXT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/train_plan.h"

namespace scalelab::model {

// Most pairs an example can hold: one per distinct key letter.
inline constexpr int64_t kMaxRecallPairs = 52;
// Tokens per forward pass when scoring recall: examples are batched up to this many tokens
// (at least one example), so activation memory is that of a forward over
// max(kRecallBatchTokens, context_len) tokens. Logits alone take batch * context_len * vocab * 4
// bytes (8 MiB at vocab 256).
inline constexpr int64_t kRecallBatchTokens = 8192;

struct RecallResult {
  int64_t context_len = 0;
  int64_t examples = 0;
  bool skipped = false;   // context_len > MaxSeqLen(): nothing was scored.
  double accuracy = 0;    // Fraction of examples answered with the right value.
  double value_loss = 0;  // Mean cross-entropy of the right value token, nats.
};

// One example as described at the top: tokens [context_len] and the expected value token.
// Deterministic in (context_len, pairs, seed, example_idx). Needs 3 * pairs + 3 <= context_len
// (runspec's eval.recall_lengths rule) and pairs <= kMaxRecallPairs.
struct RecallExample {
  std::vector<int64_t> tokens;
  int64_t value = 0;
};
absl::StatusOr<RecallExample> MakeRecallExample(int64_t context_len, int64_t pairs, uint64_t seed,
                                                int64_t example_idx);

// Scores `examples` examples of `context_len` tokens with forward(), without gradients and in
// eval mode (training mode restored). Errors: kInvalidArgument for pairs outside
// [1, kMaxRecallPairs], examples < 1, context_len < 3 * pairs + 3, or vocab_size < 128 (the
// layout uses ASCII); LibTorch failures as kResourceExhausted / kInternal.
absl::StatusOr<RecallResult> ScoreRecall(CausalLM& model, int64_t context_len, int64_t pairs,
                                         int64_t examples, uint64_t seed, int64_t vocab_size);

// For the end of training: ScoreRecall at each plan.recall_lengths entry with plan.recall_pairs,
// plan.recall_examples and plan.seed, as metrics ("recall_acc/<len>", accuracy) and
// ("recall_loss/<len>", value loss), in the order of the lengths. Skipped lengths (beyond
// MaxSeqLen) contribute no metric.
absl::StatusOr<std::vector<std::pair<std::string, double>>> RecallMetrics(CausalLM& model,
                                                                          const TrainPlan& plan,
                                                                          int64_t vocab_size);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LONG_CONTEXT_H_
