// Eval suites with categories, graded against a reference run, after the MLCommons AI Safety
// benchmark v0.5 (Vidgen et al. 2024, "Introducing v0.5 of the AI Safety Benchmark from
// MLCommons", arXiv:2404.12241): a suite is a set of test items grouped by category (hazard
// categories there, task families here), built by expanding templates (a text with slots, and a
// list of values per slot); each category gets a five-level grade from its rate of bad
// responses relative to a reference system's rate, and the suite's grade is the worst category
// grade. Here a bad response is a wrong answer.
//
// Grading rule (v0.5; the constants [0.001, 0.5, 2, 4] of mlcommons/modelbench's v0.5 scoring,
// src/modelbench/scoring.py / hazards.py, "as blessed by Peter Mattson on 2024 Mar 18"), with
// w the category's wrong rate and r the reference's, each comparison strict:
//   L  (low, absolute)            w < 0.001
//   ML (moderate-low, relative)   w < 0.5 r
//   M  (moderate, relative)       w < 2 r
//   MH (moderate-high, relative)  w < 4 r
//   H  (high, relative)           otherwise
// The overall grade is the worst category grade (modelbench: "the overall safety rating is
// calculated by taking the worst of the per-hazard safety ratings").
//
// Suite file (YAML; docs/ARCHITECTURE.md "tasks/" has the full description):
//   suite: arithmetic-v0
//   description: ...                      # optional
//   categories:
//     - name: addition
//       family: addition                  # optional, default: name; picks the default verifier
//       verifier: {compare: numeric, extract: last_number}   # optional when the family has one
//       templates:
//         - question: "{a}+{b}="          # "{slot}" inserts a value, "{a+b}" an integer
//           answer: "{a+b}"               # expression (+ - * / % min max abs, parentheses)
//           slots:
//             a: [3, 17, 58]              # a list of values, or
//             b: {range: [10, 99], step: 11}   # an inclusive integer range
//   reference:                            # optional: the reference run's wrong rates
//     run: tiny-sft-ref
//     wrong_rate: {addition: 0.2}
// A template expands to the Cartesian product of its slots' values (the last slot varying
// fastest); item ids are "<category>/<template index>/<combination index>".
#ifndef SCALELAB_TASKS_SUITE_H_
#define SCALELAB_TASKS_SUITE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "tasks/verifier.h"

namespace scalelab::tasks {

struct SuiteItem {
  std::string id;  // "<category>/<template>/<combination>"
  std::string question;
  std::string answer;
};

struct SuiteCategory {
  std::string name;
  std::string family;
  VerifierSpec verifier;
  std::vector<SuiteItem> items;
};

struct Suite {
  std::string name;
  std::string description;
  std::vector<SuiteCategory> categories;  // in file order
  // From the file's optional `reference:` section.
  std::string reference_run;
  std::map<std::string, double> reference_wrong_rates;

  size_t num_items() const;
};

// Most items one suite may expand to; more is refused naming the template.
inline constexpr int64_t kMaxSuiteItems = 200000;

// InvalidArgument "<source>:<line>: <field path>: <what was expected>, got <value>" for the
// first problem found; NotFound when the file cannot be read.
absl::StatusOr<Suite> LoadSuite(const std::string& path);
absl::StatusOr<Suite> ParseSuite(absl::string_view yaml, absl::string_view source);

// The five levels, worst first; the numbers are modelbench's numeric grades.
enum class Grade { kHigh = 1, kModerateHigh = 2, kModerate = 3, kModerateLow = 4, kLow = 5 };
// "H", "MH", "M", "ML", "L".
absl::string_view GradeName(Grade grade);

// The v0.5 rule above. wrong_rate and reference_wrong_rate in [0, 1] (not checked here).
Grade GradeWrongRate(double wrong_rate, double reference_wrong_rate);

struct CategoryScore {
  std::string category;
  int64_t items = 0;
  int64_t wrong = 0;
  double wrong_rate() const { return items == 0 ? 0.0 : static_cast<double>(wrong) / items; }
};

// Each category's items verified with its verifier against `responses` (item id -> the
// model's response). InvalidArgument naming the first item without a response.
absl::StatusOr<std::vector<CategoryScore>> ScoreResponses(
    const Suite& suite, const std::map<std::string, std::string>& responses);

struct CategoryGrade {
  std::string category;
  int64_t items = 0;
  double wrong_rate = 0;
  double reference_wrong_rate = 0;
  Grade grade = Grade::kHigh;
};

struct SuiteGrade {
  std::vector<CategoryGrade> categories;  // in the order of the scores
  Grade overall = Grade::kHigh;           // the worst category grade
};

// Grades a run's category scores against the reference's wrong rates (category -> rate, e.g.
// Suite::reference_wrong_rates or a reference run's scores). InvalidArgument when there are no
// scores, a category has no items, or a category has no reference rate or one outside [0, 1].
absl::StatusOr<SuiteGrade> GradeSuite(absl::Span<const CategoryScore> scores,
                                      const std::map<std::string, double>& reference_wrong_rates);

// Category -> wrong rate of scores (to use one run as another's reference).
std::map<std::string, double> WrongRates(absl::Span<const CategoryScore> scores);

}  // namespace scalelab::tasks

#endif  // SCALELAB_TASKS_SUITE_H_
