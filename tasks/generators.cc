#include "tasks/generators.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tasks/internal/rng.h"

namespace scalelab::tasks {
namespace {

using internal::Rng;

constexpr std::array<std::pair<TaskFamily, absl::string_view>, 5> kFamilies = {{
    {TaskFamily::kAddition, "addition"},
    {TaskFamily::kMultiplication, "multiplication"},
    {TaskFamily::kModular, "modular"},
    {TaskFamily::kSorting, "sorting"},
    {TaskFamily::kWord, "word"},
}};

// A decimal operand of exactly `digits` digits (no leading zero); one digit includes 0.
std::string RandomOperand(Rng& rng, int digits) {
  std::string out;
  out.reserve(digits);
  out.push_back(static_cast<char>('0' + rng.Uniform(digits == 1 ? 0 : 1, 9)));
  for (int i = 1; i < digits; ++i) out.push_back(static_cast<char>('0' + rng.Uniform(0, 9)));
  return out;
}

// Schoolbook arithmetic on decimal strings, so operands may have up to 100 digits.
std::string AddDecimal(const std::string& a, const std::string& b) {
  std::string out;
  int carry = 0;
  for (size_t i = 0; i < std::max(a.size(), b.size()) || carry; ++i) {
    int sum = carry;
    if (i < a.size()) sum += a[a.size() - 1 - i] - '0';
    if (i < b.size()) sum += b[b.size() - 1 - i] - '0';
    out.push_back(static_cast<char>('0' + sum % 10));
    carry = sum / 10;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::string MultiplyDecimal(const std::string& a, const std::string& b) {
  std::vector<int> digits(a.size() + b.size(), 0);  // least significant first
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < b.size(); ++j) {
      digits[i + j] += (a[a.size() - 1 - i] - '0') * (b[b.size() - 1 - j] - '0');
    }
  }
  for (size_t k = 0; k + 1 < digits.size(); ++k) {
    digits[k + 1] += digits[k] / 10;
    digits[k] %= 10;
  }
  while (digits.size() > 1 && digits.back() == 0) digits.pop_back();
  std::string out;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it)
    out.push_back(static_cast<char>('0' + *it));
  return out;
}

int64_t Pow10(int exponent) {
  int64_t value = 1;
  for (int i = 0; i < exponent; ++i) value *= 10;
  return value;
}

struct Drawn {
  std::string question;
  std::string answer;
};

Drawn DrawModular(Rng& rng, const GeneratorOptions& options) {
  const int64_t lo = options.operand_digits == 1 ? 0 : Pow10(options.operand_digits - 1);
  const int64_t hi = Pow10(options.operand_digits) - 1;
  const int64_t a = rng.Uniform(lo, hi);
  const int64_t b = rng.Uniform(lo, hi);
  const int op = static_cast<int>(rng.Uniform(0, 2));
  const __int128 m = options.modulus;
  __int128 value = op == 0 ? __int128{a} + b : op == 1 ? __int128{a} - b : __int128{a} * b;
  value %= m;
  if (value < 0) value += m;
  const char symbol = op == 0 ? '+' : op == 1 ? '-' : '*';
  return {absl::StrCat(a, std::string(1, symbol), b, " mod ", options.modulus, "="),
          absl::StrCat(static_cast<int64_t>(value))};
}

Drawn DrawSorting(Rng& rng, const GeneratorOptions& options) {
  std::vector<int64_t> values(options.length);
  for (int64_t& value : values) value = rng.Uniform(0, options.max_value);
  Drawn drawn{absl::StrCat("sort ", absl::StrJoin(values, " "), "="), ""};
  std::sort(values.begin(), values.end());
  drawn.answer = absl::StrJoin(values, " ");
  return drawn;
}

Drawn DrawWord(Rng& rng, const GeneratorOptions& options) {
  static constexpr std::array<absl::string_view, 8> kNames = {"Ann", "Bob", "Cy",  "Dee",
                                                              "Eve", "Fay", "Gus", "Hal"};
  static constexpr std::array<absl::string_view, 8> kItems = {"apples", "pens", "cards",  "coins",
                                                              "books",  "eggs", "shells", "stamps"};
  const absl::string_view name = kNames[rng.Uniform(0, kNames.size() - 1)];
  const absl::string_view item = kItems[rng.Uniform(0, kItems.size() - 1)];
  int64_t count = rng.Uniform(0, options.max_value);
  std::string text = absl::StrCat(name, " has ", count, " ", item, ".");
  for (int step = 0; step < options.steps; ++step) {
    // Give away only what is there, so every intermediate count is a whole, non-negative number.
    const bool give = count > 0 && rng.Uniform(0, 1) == 1;
    if (give) {
      const int64_t amount = rng.Uniform(1, count);
      absl::StrAppend(&text, " ", name, " gives away ", amount, ".");
      count -= amount;
    } else {
      const int64_t amount = rng.Uniform(1, options.max_value);
      absl::StrAppend(&text, " ", name, " gets ", amount, " more.");
      count += amount;
    }
  }
  absl::StrAppend(&text, " How many ", item, " does ", name, " have?");
  return {std::move(text), absl::StrCat(count)};
}

Drawn DrawCandidate(Rng& rng, const GeneratorOptions& options) {
  switch (options.family) {
    case TaskFamily::kAddition: {
      const std::string a = RandomOperand(rng, options.digits);
      const std::string b = RandomOperand(rng, options.digits);
      return {absl::StrCat(a, "+", b, "="), AddDecimal(a, b)};
    }
    case TaskFamily::kMultiplication: {
      const std::string a = RandomOperand(rng, options.digits);
      const std::string b = RandomOperand(rng, options.digits);
      return {absl::StrCat(a, "*", b, "="), MultiplyDecimal(a, b)};
    }
    case TaskFamily::kModular:
      return DrawModular(rng, options);
    case TaskFamily::kSorting:
      return DrawSorting(rng, options);
    case TaskFamily::kWord:
      return DrawWord(rng, options);
  }
  return {};
}

absl::Status RangeError(absl::string_view knob, int64_t value, int64_t lo, int64_t hi) {
  return absl::InvalidArgumentError(
      absl::StrCat(knob, ": expected an integer in [", lo, ", ", hi, "], got ", value));
}

}  // namespace

absl::string_view FamilyName(TaskFamily family) {
  for (const auto& [known, name] : kFamilies) {
    if (known == family) return name;
  }
  return "unknown";
}

absl::StatusOr<TaskFamily> ParseFamily(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(text.data(), text.size()));
  for (const auto& [family, name] : kFamilies) {
    if (lower == name) return family;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("task: expected one of addition, multiplication, modular, sorting, word, got \"",
                   lower.substr(0, 80), "\""));
}

absl::Status GeneratorOptions::Validate() const {
  if (auto status = fractions.Validate(); !status.ok()) return status;
  switch (family) {
    case TaskFamily::kAddition:
    case TaskFamily::kMultiplication:
      if (digits < 1 || digits > 100) return RangeError("digits", digits, 1, 100);
      break;
    case TaskFamily::kModular:
      if (modulus < 2 || modulus > 1000000000) return RangeError("modulus", modulus, 2, 1000000000);
      if (operand_digits < 1 || operand_digits > 9) {
        return RangeError("operand_digits", operand_digits, 1, 9);
      }
      break;
    case TaskFamily::kSorting:
      if (length < 1 || length > 64) return RangeError("length", length, 1, 64);
      [[fallthrough]];
    case TaskFamily::kWord:
      if (max_value < 1 || max_value > 1000000000) {
        return RangeError("max_value", max_value, 1, 1000000000);
      }
      if (family == TaskFamily::kWord && (steps < 1 || steps > 10)) {
        return RangeError("steps", steps, 1, 10);
      }
      break;
  }
  return absl::OkStatus();
}

std::string GeneratorOptions::Difficulty() const {
  switch (family) {
    case TaskFamily::kAddition:
    case TaskFamily::kMultiplication:
      return absl::StrCat("digits=", digits);
    case TaskFamily::kModular:
      return absl::StrCat("modulus=", modulus, ",operand_digits=", operand_digits);
    case TaskFamily::kSorting:
      return absl::StrCat("length=", length, ",max_value=", max_value);
    case TaskFamily::kWord:
      return absl::StrCat("steps=", steps, ",max_value=", max_value);
  }
  return "";
}

absl::StatusOr<std::vector<Problem>> GenerateProblems(const GeneratorOptions& options, Split split,
                                                      int64_t first_index, int64_t count) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (first_index < 0 || count < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected a non-negative first index and count, got ", first_index, " and ", count));
  }
  const std::string family(FamilyName(options.family));
  const std::string difficulty = options.Difficulty();
  // The stream depends on the family and knobs, so changing one knob changes every problem.
  const uint64_t stream = StableHash(absl::StrCat(family, "/", difficulty));
  // A split with fraction f takes about 1/f candidates per problem; a thousand times that with
  // nothing found means the split holds no question for these knobs.
  const int64_t wanted = first_index + count;
  const int64_t max_candidates = 1000 * (wanted + 100);
  std::vector<Problem> problems;
  problems.reserve(std::min<int64_t>(count, 1 << 16));
  int64_t found = 0;
  for (int64_t candidate = 0; found < wanted; ++candidate) {
    if (candidate >= max_candidates) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the ", SplitName(split), " split of ", family, " (", difficulty, ") holds too few ",
          "questions: found ", found, " of ", wanted, " in ", candidate,
          " candidates; raise the difficulty knobs or change the split fractions"));
    }
    Rng rng(internal::MixSeed(options.seed, stream, static_cast<uint64_t>(candidate)));
    Drawn drawn = DrawCandidate(rng, options);
    if (SplitOfQuestion(drawn.question, options.fractions) != split) continue;
    if (found++ < first_index) continue;
    Problem& problem = problems.emplace_back();
    problem.id = absl::StrCat(family, "-", difficulty, "-s", options.seed, "-", SplitName(split),
                              "-", found - 1);
    problem.family = family;
    problem.question = std::move(drawn.question);
    problem.answer = std::move(drawn.answer);
    problem.difficulty = difficulty;
    problem.split = split;
  }
  return problems;
}

absl::StatusOr<Problem> GenerateProblem(const GeneratorOptions& options, Split split,
                                        int64_t index) {
  absl::StatusOr<std::vector<Problem>> problems = GenerateProblems(options, split, index, 1);
  if (!problems.ok()) return problems.status();
  return std::move(problems->front());
}

}  // namespace scalelab::tasks
