// The examples of supervised fine-tuning (kind SFT) as token rows: a task set's problems turned
// into prompt + response byte tokens (model/task_set.h), filtered by length, put in epoch order
// and laid out into batches, either one example per row (padded to the batch's longest) or
// several per row (packed). Torch-free: rows are flat int64 vectors the loop turns into tensors.
//
// Targets are the inputs shifted by one; a target counts toward the loss only when it is a
// response token. Prompt positions, the boundary between packed examples (whose target is the
// next example's first prompt token) and padding get kIgnoreTarget.

#ifndef SCALELAB_MODEL_SFT_DATA_H_
#define SCALELAB_MODEL_SFT_DATA_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "model/task_set.h"
#include "tasks/problem.h"

namespace scalelab::model {

// The target of a position that carries no loss.
inline constexpr int64_t kIgnoreTarget = -1;

struct SftExample {
  std::vector<int64_t> tokens;  // prompt then response (kEndOfResponse included)
  int64_t prompt_tokens = 0;    // the first prompt_tokens of `tokens` are the prompt
  int64_t response_tokens() const { return static_cast<int64_t>(tokens.size()) - prompt_tokens; }
};

struct SftExampleSet {
  std::vector<SftExample> examples;  // kept, in problem order
  int64_t drawn = 0;                 // problems read from the split
  int64_t dropped_short = 0;         // fewer than min_tokens tokens
  int64_t dropped_long = 0;          // more than max_tokens tokens
};

// Problems 0 .. count - 1 of `split` as examples; those with fewer than `min_tokens` (0 = no
// minimum) or more than `max_tokens` prompt + response tokens are dropped and counted. Errors of
// TaskSet::Problems; kInvalidArgument when max_tokens < 2 (one input and one target at least).
// An empty result is not an error here: the caller names the fields that emptied it.
absl::StatusOr<SftExampleSet> BuildSftExamples(const TaskSet& tasks, tasks::Split split,
                                               int64_t count, bool use_solution, int64_t min_tokens,
                                               int64_t max_tokens);

// The order examples are trained in for `epochs` passes over `unique` examples:
// round(unique * epochs) indices, each whole epoch a fresh permutation of 0 .. unique - 1 (seeded
// by `seed` and the epoch), a fractional last epoch the first part of its permutation. So every
// example is seen floor(epochs) or ceil(epochs) times.
std::vector<int64_t> SftExampleOrder(int64_t unique, double epochs, uint64_t seed);

// A batch as rows x width tokens, row-major.
struct SftRows {
  int64_t rows = 0;
  int64_t width = 0;
  std::vector<int64_t> inputs;   // padding is token 0
  std::vector<int64_t> targets;  // kIgnoreTarget where no loss counts
  int64_t tokens = 0;            // example tokens in the batch (prompt + response)
  int64_t loss_tokens = 0;       // targets that count
};

// Lays `examples[indices[i]]` out as rows. pack = false: one example per row, width the longest
// example's length - 1. pack = true: examples in order, as many whole ones per row as fit in
// seq_len + 1 tokens (inputs seq_len), width the fullest row's. Every example must have at most
// seq_len tokens (BuildSftExamples with max_tokens <= seq_len guarantees it).
SftRows LayOutSftBatch(const std::vector<SftExample>& examples, absl::Span<const int64_t> indices,
                       int64_t seq_len, bool pack);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_SFT_DATA_H_
