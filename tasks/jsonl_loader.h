// User problem sets as JSONL: one JSON object per line, blank lines skipped.
//
//   {"question": "Tom has 3 ...", "answer": "He buys 2 ... #### 42"}
//   {"question": "12+30=", "answer": 42, "split": "test", "id": "q7", "family": "addition"}
//
// Fields: "question" (string, required), "answer" (string or number, required). A GSM8K-style
// answer ending in "#### N" gives the final answer N (the text after the last "####") and the
// worked solution (the text before it). Optional: "split" (train, held_out, test; otherwise
// assigned from the question's hash, SplitOfQuestion), "id" (default "<file stem>-<line>"),
// "family" or "category" (default LoadOptions::family, else "gsm8k" when the answer has "####",
// else "user"). Other fields are ignored. The same question given two different splits is an
// error, so splits stay disjoint.
#ifndef SCALELAB_TASKS_JSONL_LOADER_H_
#define SCALELAB_TASKS_JSONL_LOADER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tasks/problem.h"

namespace scalelab::tasks {

struct LoadOptions {
  // Family given to lines without "family"/"category"; empty = "gsm8k" or "user" by the answer.
  std::string family;
  // For lines without "split".
  SplitFractions fractions;
};

// Every problem of the file, in file order. NotFound when the file cannot be opened;
// InvalidArgument "<path>:<line>: <what was wrong>" for the first bad line (not a JSON object, a
// missing or empty question or answer, a field of the wrong type, an unknown split, a question
// given two splits) or for an empty file.
absl::StatusOr<std::vector<Problem>> LoadProblemsJsonl(const std::string& path,
                                                       const LoadOptions& options = {});

// The same over text already read; `source` names it in errors and default ids.
absl::StatusOr<std::vector<Problem>> ParseProblemsJsonl(absl::string_view text,
                                                        absl::string_view source,
                                                        const LoadOptions& options = {});

}  // namespace scalelab::tasks

#endif  // SCALELAB_TASKS_JSONL_LOADER_H_
