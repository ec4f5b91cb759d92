// A run's task set (v1::TaskSetSpec) opened for the post-training loops: its problems by split,
// its verifier, and the byte-level text format of prompts and responses that SFT trains on and
// GRPO and evaluation generate with. Torch-free.
//
// The format (byte tokens, vocab 256):
//   prompt    the question's bytes, as written ("482+917=")
//   response  the answer ("1399"), or with use_solution the worked solution when the problem has
//             one followed by "#### <answer>", then the end marker "\n" (kEndOfResponse)
// Generation stops at kEndOfResponse, which the verifier never sees.

#ifndef SCALELAB_MODEL_TASK_SET_H_
#define SCALELAB_MODEL_TASK_SET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scalelab/v1/common.pb.h"
#include "tasks/generators.h"
#include "tasks/problem.h"
#include "tasks/verifier.h"

namespace scalelab::model {

inline constexpr char kEndOfResponse = '\n';

class TaskSet {
 public:
  // A generator's set, or the JSONL file at spec.path (absolute: the worker resolves relative
  // ones). The verifier is spec.extract/compare/pattern when set, else the family's default.
  // Errors: kInvalidArgument naming the field (unknown generator, bad knobs, bad pattern);
  // kNotFound / kInvalidArgument from the JSONL loader.
  static absl::StatusOr<TaskSet> Open(const scalelab::v1::TaskSetSpec& spec);

  // The label of results: spec.name, else "<generator>-<difficulty>" ("addition-digits=3"), else
  // the file's stem.
  const std::string& name() const { return name_; }
  const tasks::Verifier& verifier() const { return verifier_; }

  // Problems first .. first + count - 1 of `split`. A generated set draws them (deterministic);
  // a loaded set cycles through the split's problems in file order (so a count above the
  // split's size repeats them). kResourceExhausted when the split holds no problem.
  absl::StatusOr<std::vector<tasks::Problem>> Problems(tasks::Split split, int64_t first,
                                                       int64_t count) const;

 private:
  TaskSet(std::string name, tasks::Verifier verifier)
      : name_(std::move(name)), verifier_(std::move(verifier)) {}

  std::string name_;
  tasks::Verifier verifier_;
  bool generated_ = false;
  tasks::GeneratorOptions generator_;
  std::vector<tasks::Problem> loaded_[3];  // by tasks::Split
};

// Bytes as tokens (0..255) and back (tokens >= 256 are dropped).
std::vector<int64_t> EncodeBytes(absl::string_view text);
std::string DecodeBytes(const std::vector<int64_t>& tokens);

// The prompt text of a problem.
std::string PromptText(const tasks::Problem& problem);
// The response text a model is trained to write, kEndOfResponse included.
std::string ResponseText(const tasks::Problem& problem, bool use_solution);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TASK_SET_H_
