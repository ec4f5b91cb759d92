// Verifiers: does a model's response carry the reference answer?
//
// A verifier is an extractor (which part of the response is the final answer) followed by a
// comparison (exact text or numeric with tolerance). Each task family names its default
// (DefaultVerifierFor). Extraction takes the *last* match in the response, as the final answer
// comes last in a worked solution.
#ifndef SCALELAB_TASKS_VERIFIER_H_
#define SCALELAB_TASKS_VERIFIER_H_

#include <memory>
#include <optional>
#include <regex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace scalelab::tasks {

// A number as written in text (ECMAScript): thousands groups or plain digits, a fraction, an
// exponent, an optional sign and "$"; or a bare fraction (".5"). kLastNumber's pattern.
inline constexpr char kNumberPattern[] =
    R"([-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?|[-+]?\$?\.\d+(?:[eE][-+]?\d+)?)";
// kAnswerIs's pattern, matched ignoring case; group 1 is the number.
inline constexpr char kAnswerIsPattern[] =
    R"(answer(?:\s+is|\s*:)\s*:?\s*([-+]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?|[-+]?\$?\.\d+(?:[eE][-+]?\d+)?))";

enum class Extract {
  kWhole,       // the whole response
  kHashes,      // the text after the last "####" up to the end of its line (GSM8K)
  kAnswerIs,    // the number after the last "answer is" / "answer:" (any case)
  kLastNumber,  // the last number in the response
  kPattern,     // the last match of a user regex: its first capture group, or the whole match
};

enum class Compare {
  kExact,    // equal after CanonicalText (trimmed, inner whitespace runs as one space)
  kNumeric,  // both parse as numbers (ParseNumber) within the tolerances
};

struct VerifierSpec {
  Extract extract = Extract::kWhole;
  Compare compare = Compare::kExact;
  // kPattern only: an ECMAScript regex (std::regex).
  std::string pattern;
  // kNumeric only: |got - want| <= max(abs_tol, rel_tol * max(|got|, |want|)), as Python's
  // math.isclose. Defaults accept only equal values up to rounding in the last digits.
  double abs_tol = 1e-9;
  double rel_tol = 1e-9;

  // InvalidArgument naming the field: negative or non-finite tolerances, an empty or invalid
  // pattern with kPattern, a pattern without kPattern.
  absl::Status Validate() const;
  // "numeric(last_number)", "exact(whole)", "exact(pattern=/.../)" and so on.
  std::string Describe() const;
};

// "whole", "hashes", "answer_is", "last_number", "pattern"; "exact", "numeric".
absl::StatusOr<Extract> ParseExtract(absl::string_view text);
absl::StatusOr<Compare> ParseCompare(absl::string_view text);
absl::string_view ExtractName(Extract extract);
absl::string_view CompareName(Compare compare);

// The default verifier of a task family: numeric on the last number for addition,
// multiplication, modular and word; exact on the whole response for sorting and "user" (loaded
// sets without "####"); numeric on "#### N" for "gsm8k". NotFound for other names.
absl::StatusOr<VerifierSpec> DefaultVerifierFor(absl::string_view family);

// A number in common written forms: "42", "-3.50", "+7", "42.", ".5", "1,234" and
// "1,234,567.5" (commas only as thousands separators), "1e-3", a leading "$" and a trailing
// "%" or sentence period ignored. nullopt for anything else (words, "1,23", "inf", "0x10").
std::optional<double> ParseNumber(absl::string_view text);

struct Verdict {
  bool correct = false;
  // What the extractor took from the response; nullopt when it found nothing (then wrong).
  std::optional<std::string> extracted;
};

// A compiled verifier. Thread-compatible: Verify is const and may run on several threads.
class Verifier {
 public:
  // InvalidArgument from VerifierSpec::Validate (the regex compiled here).
  static absl::StatusOr<Verifier> Create(const VerifierSpec& spec);

  // `reference` is the problem's final answer ("579", "1 3 5 9"); it is not extracted from.
  Verdict Verify(absl::string_view response, absl::string_view reference) const;
  // The extractor alone.
  std::optional<std::string> ExtractAnswer(absl::string_view response) const;
  const VerifierSpec& spec() const { return spec_; }

 private:
  explicit Verifier(VerifierSpec spec) : spec_(std::move(spec)) {}

  VerifierSpec spec_;
  std::shared_ptr<const std::regex> pattern_;  // kPattern only; shared so Verifier copies
};

}  // namespace scalelab::tasks

#endif  // SCALELAB_TASKS_VERIFIER_H_
