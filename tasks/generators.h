// Built-in generators of problems with checkable answers, deterministic by seed.
//
// The same (options, split, index) always gives the same Problem: candidate j of a task set is
// drawn from a generator seeded by (seed, family and knobs, j) alone, and the split's problems
// are the candidates whose question falls in that split (SplitOfQuestion), in order. So index i
// of the test split never depends on how many train problems were asked for, and no question
// of one split appears in another, for any seeds.
//
// Texts are short and regular, for byte-level models of about 1M parameters:
//   addition        "482+917="                  -> "1399"
//   multiplication  "48*91="                    -> "4368"
//   modular         "37*58 mod 7="              -> "3"     (+, - or *; the result in [0, m))
//   sorting         "sort 5 3 9 1="             -> "1 3 5 9"
//   word            "Ann has 5 pens. Ann gets 3 more. Ann gives away 2. How many pens does Ann
//                    have?"                     -> "6"
// Small knob settings have few distinct questions; a split then repeats questions (drawing with
// replacement) rather than failing, and fails only when it holds none at all.
#ifndef SCALELAB_TASKS_GENERATORS_H_
#define SCALELAB_TASKS_GENERATORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tasks/problem.h"

namespace scalelab::tasks {

enum class TaskFamily { kAddition, kMultiplication, kModular, kSorting, kWord };

// "addition", "multiplication", "modular", "sorting", "word".
absl::string_view FamilyName(TaskFamily family);
// InvalidArgument naming the value and the known families.
absl::StatusOr<TaskFamily> ParseFamily(absl::string_view text);

struct GeneratorOptions {
  TaskFamily family = TaskFamily::kAddition;
  // addition, multiplication: digits of each operand (1..100; 1 includes 0).
  int digits = 3;
  // modular: the modulus (2..1e9) and digits of each operand (1..9).
  int64_t modulus = 7;
  int operand_digits = 2;
  // sorting: list length (1..64); sorting and word: values in [0, max_value] (1..1e9).
  int length = 5;
  int64_t max_value = 99;
  // word: operations after the opening sentence (1..10).
  int steps = 2;
  uint64_t seed = 1;
  SplitFractions fractions;

  // InvalidArgument naming the knob, its value and the accepted range.
  absl::Status Validate() const;
  // The knobs that matter for the family, e.g. "digits=3" or "modulus=7,operand_digits=2".
  std::string Difficulty() const;
};

// Problems first_index .. first_index + count - 1 of `split`. InvalidArgument for bad options or
// a negative first_index or count; ResourceExhausted when the split holds no question for these
// knobs (e.g. a one-digit task with a tiny held-out fraction).
absl::StatusOr<std::vector<Problem>> GenerateProblems(const GeneratorOptions& options, Split split,
                                                      int64_t first_index, int64_t count);
// Problem `index` of `split` (GenerateProblems with count 1).
absl::StatusOr<Problem> GenerateProblem(const GeneratorOptions& options, Split split,
                                        int64_t index);

}  // namespace scalelab::tasks

#endif  // SCALELAB_TASKS_GENERATORS_H_
