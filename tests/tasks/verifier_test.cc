#include "tasks/verifier.h"

#include <catch2/catch.hpp>
#include <random>
#include <regex>
#include <string>

#include "tasks/problem.h"

namespace scalelab::tasks {
namespace {

Verifier Make(Extract extract, Compare compare, std::string pattern = "") {
  VerifierSpec spec;
  spec.extract = extract;
  spec.compare = compare;
  spec.pattern = std::move(pattern);
  absl::StatusOr<Verifier> verifier = Verifier::Create(spec);
  REQUIRE(verifier.ok());
  return *std::move(verifier);
}

TEST_CASE("Numbers parse in their common written forms", "[tasks][verifier]") {
  CHECK(*ParseNumber("42") == 42);
  CHECK(*ParseNumber("  -3.50 ") == -3.5);
  CHECK(*ParseNumber("42.") == 42);
  CHECK(*ParseNumber("+7") == 7);
  CHECK(*ParseNumber(".5") == 0.5);
  CHECK(*ParseNumber("1,234") == 1234);
  CHECK(*ParseNumber("1,234,567.25") == 1234567.25);
  CHECK(*ParseNumber("$1,000") == 1000);
  CHECK(*ParseNumber("-$5") == -5);
  CHECK(*ParseNumber("$-5") == -5);
  CHECK(*ParseNumber("12%") == 12);
  CHECK(*ParseNumber("4.25.") == 4.25);
  CHECK(*ParseNumber("1e-3") == 0.001);
  CHECK(*ParseNumber("007") == 7);
  CHECK_FALSE(ParseNumber("").has_value());
  CHECK_FALSE(ParseNumber("forty-two").has_value());
  CHECK_FALSE(ParseNumber("1,23").has_value());  // commas only as thousands separators
  CHECK_FALSE(ParseNumber("12,34,567").has_value());
  CHECK_FALSE(ParseNumber("inf").has_value());
  CHECK_FALSE(ParseNumber("nan").has_value());
  CHECK_FALSE(ParseNumber("0x10").has_value());
  CHECK_FALSE(ParseNumber("--5").has_value());
  CHECK_FALSE(ParseNumber("5 apples").has_value());
  CHECK_FALSE(ParseNumber("1e999").has_value());  // not finite
}

TEST_CASE("Exact match ignores surrounding and repeated whitespace only", "[tasks][verifier]") {
  const Verifier exact = Make(Extract::kWhole, Compare::kExact);
  CHECK(exact.Verify("  1 3  5\t9\n", "1 3 5 9").correct);
  CHECK_FALSE(exact.Verify("1 3 5 9.", "1 3 5 9").correct);
  CHECK_FALSE(exact.Verify("1 3 9 5", "1 3 5 9").correct);
  CHECK_FALSE(exact.Verify("Paris", "paris").correct);  // case matters
  CHECK(exact.Verify("", "").correct);
  CHECK(CanonicalText("\n a \t b  ") == "a b");
}

TEST_CASE("Numeric match uses absolute and relative tolerances", "[tasks][verifier]") {
  VerifierSpec spec;
  spec.extract = Extract::kWhole;
  spec.compare = Compare::kNumeric;
  spec.abs_tol = 0.01;
  spec.rel_tol = 0;
  absl::StatusOr<Verifier> absolute = Verifier::Create(spec);
  REQUIRE(absolute.ok());
  CHECK(absolute->Verify("3.005", "3").correct);
  CHECK_FALSE(absolute->Verify("3.02", "3").correct);
  spec.abs_tol = 0;
  spec.rel_tol = 0.01;
  absl::StatusOr<Verifier> relative = Verifier::Create(spec);
  REQUIRE(relative.ok());
  CHECK(relative->Verify("1,005", "1000").correct);
  CHECK_FALSE(relative->Verify("1,011", "1000").correct);
  CHECK_FALSE(relative->Verify("0.001", "0").correct);  // relative alone never accepts near 0

  const Verifier numeric = Make(Extract::kWhole, Compare::kNumeric);
  CHECK(numeric.Verify("-3.50", "-3.5").correct);
  CHECK(numeric.Verify("42.", "42").correct);
  CHECK(numeric.Verify("1,234", "1234").correct);
  CHECK_FALSE(numeric.Verify("1234.5", "1234").correct);
  CHECK_FALSE(numeric.Verify("forty", "40").correct);
  // A reference that is not a number is compared exactly.
  CHECK(numeric.Verify("yes", "yes").correct);
}

TEST_CASE("Extractors take the final answer from a worked response", "[tasks][verifier]") {
  const Verifier hashes = Make(Extract::kHashes, Compare::kNumeric);
  CHECK(hashes.Verify("She has 3+4=7 apples.\n#### 7", "7").correct);
  CHECK(hashes.Verify("#### 3\nno, wait\n####  1,234 \nmore text", "1234").correct);
  CHECK(*hashes.ExtractAnswer("#### 3\nno, wait\n####  1,234 \nmore text") == "1,234");
  CHECK_FALSE(hashes.ExtractAnswer("The answer is 7").has_value());
  CHECK_FALSE(hashes.ExtractAnswer("####   \n").has_value());

  const Verifier answer_is = Make(Extract::kAnswerIs, Compare::kNumeric);
  CHECK(answer_is.Verify("First 2+2=4. So the answer is 12.", "12").correct);
  CHECK(answer_is.Verify("The Answer: -3.5", "-3.5").correct);
  CHECK(answer_is.Verify("answer is 5, no, the answer is $1,200.", "1200").correct);
  CHECK_FALSE(answer_is.ExtractAnswer("I think 12").has_value());

  const Verifier last = Make(Extract::kLastNumber, Compare::kNumeric);
  CHECK(last.Verify("579", "579").correct);
  CHECK(last.Verify("3 + 4 = 7, then 7 * 2 = 14.", "14").correct);
  CHECK(*last.ExtractAnswer("costs $1,234.50 in total.") == "$1,234.50");
  CHECK(last.Verify("costs $1,234.50 in total.", "1234.5").correct);
  CHECK_FALSE(last.Verify("3 + 4 = 7, then 7 * 2 = 14.", "7").correct);
  CHECK_FALSE(last.ExtractAnswer("no digits here").has_value());
  CHECK_FALSE(last.Verify("", "0").correct);

  const Verifier pattern = Make(Extract::kPattern, Compare::kExact, R"(<ans>(.*?)</ans>)");
  CHECK(pattern.Verify("<ans>1 2</ans> then <ans>1 2 3</ans>", "1 2 3").correct);
  const Verifier whole_match = Make(Extract::kPattern, Compare::kNumeric, R"(-?\d+)");
  CHECK(*whole_match.ExtractAnswer("a 1 b 22 c") == "22");
}

// The last match of `regex` over the whole text: what the fast extractors must agree with.
std::optional<std::string> LastMatchReference(const std::regex& regex, const std::string& text,
                                              int group) {
  std::optional<std::string> last;
  for (std::sregex_iterator it(text.begin(), text.end(), regex), end; it != end; ++it) {
    last = (*it)[group].str();
  }
  return last;
}

TEST_CASE("The built-in extractors equal a full regex scan on random texts", "[tasks][verifier]") {
  const std::regex number(kNumberPattern);
  const std::regex answer_is(kAnswerIsPattern, std::regex::icase);
  const Verifier last = Make(Extract::kLastNumber, Compare::kExact);
  const Verifier answer = Make(Extract::kAnswerIs, Compare::kExact);
  // Texts dense in the characters numbers are made of, and in "answer is" / "Answer:".
  const std::string pieces[] = {"0",      "7",      "12",   "1,234", ",",    ".",  "$",
                                "+",      "-",      "e",    "E",     " ",    "\n", "x",
                                "answer", "ANSWER", " is ", ":",     "1,23", "5.", ".5"};
  std::mt19937_64 rng(3);
  int with_number = 0;
  int with_answer = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string text;
    const int length = static_cast<int>(rng() % 30);
    for (int i = 0; i < length; ++i) text += pieces[rng() % std::size(pieces)];
    INFO("text: \"" << text << "\"");
    const std::optional<std::string> want_number = LastMatchReference(number, text, 0);
    const std::optional<std::string> want_answer = LastMatchReference(answer_is, text, 1);
    CHECK(last.ExtractAnswer(text) == want_number);
    CHECK(answer.ExtractAnswer(text) == want_answer);
    with_number += want_number.has_value();
    with_answer += want_answer.has_value();
  }
  // Both kinds of match were exercised, not only "nothing found".
  CHECK(with_number > 1000);
  CHECK(with_answer > 100);
}

TEST_CASE("Bad verifier specs are refused naming the field", "[tasks][verifier]") {
  VerifierSpec spec;
  spec.extract = Extract::kPattern;
  CHECK(std::string(Verifier::Create(spec).status().message()) ==
        "verifier.pattern: extract: pattern needs a regex");
  spec.pattern = "(unclosed";
  CHECK(std::string(Verifier::Create(spec).status().message())
            .find("verifier.pattern: not a valid regex") == 0);
  spec = {};
  spec.pattern = "x";
  CHECK(std::string(Verifier::Create(spec).status().message())
            .find("verifier.pattern: set, but extract is whole") == 0);
  spec = {};
  spec.abs_tol = -1;
  CHECK(std::string(Verifier::Create(spec).status().message()).find("verifier.abs_tol") == 0);
  CHECK(std::string(ParseExtract("final").status().message()).find("extract: expected one of") ==
        0);
  CHECK(std::string(ParseCompare("fuzzy").status().message()) ==
        "compare: expected exact or numeric, got \"fuzzy\"");
  CHECK(DefaultVerifierFor("poetry").status().code() == absl::StatusCode::kNotFound);
  CHECK(DefaultVerifierFor("gsm8k")->extract == Extract::kHashes);
}

}  // namespace
}  // namespace scalelab::tasks
