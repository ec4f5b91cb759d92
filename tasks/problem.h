// A verifiable problem and the split it belongs to.
//
// Every task set (generated or loaded) has three splits: train (SFT and RL prompts), held_out
// (the generalization loss) and test (pass@k). A question's split is a function of its canonical
// text alone (SplitOfQuestion), so two splits never share a question, whatever the seed, the
// generator or the file it came from.
#ifndef SCALELAB_TASKS_PROBLEM_H_
#define SCALELAB_TASKS_PROBLEM_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace scalelab::tasks {

enum class Split { kTrain, kHeldOut, kTest };

// "train", "held_out", "test".
absl::string_view SplitName(Split split);
// Parses SplitName's spellings (and "heldout", "held-out"); InvalidArgument naming the value and
// the accepted spellings otherwise.
absl::StatusOr<Split> ParseSplit(absl::string_view text);

struct Problem {
  std::string id;          // unique within a task set, e.g. "addition-d3-s1-test-17"
  std::string family;      // task family (category), e.g. "addition"
  std::string question;    // the prompt text
  std::string answer;      // the reference final answer, e.g. "579"
  std::string solution;    // worked solution when the source has one (GSM8K), else empty
  std::string difficulty;  // the knobs that made it, e.g. "digits=3"; empty for loaded sets
  Split split = Split::kTrain;
};

// Whitespace trimmed at both ends and every inner run of whitespace (space, tab, newline, CR)
// collapsed to one space: the form splits are hashed on and exact matches compare.
std::string CanonicalText(absl::string_view text);

// 64-bit FNV-1a of the bytes: stable across platforms, builds and runs (absl::Hash is not).
uint64_t StableHash(absl::string_view bytes);

// The split of a question: its canonical text hashed into [0, 1) and cut at the fractions
// (train first, then held_out, the rest test). Defaults: 80 / 10 / 10.
struct SplitFractions {
  double train = 0.8;
  double held_out = 0.1;  // test gets 1 - train - held_out
  // InvalidArgument unless both are in [0, 1] and their sum is at most 1.
  absl::Status Validate() const;
};
Split SplitOfQuestion(absl::string_view question, const SplitFractions& fractions = {});

}  // namespace scalelab::tasks

#endif  // SCALELAB_TASKS_PROBLEM_H_
