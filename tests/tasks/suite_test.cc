#include "tasks/suite.h"

#include <catch2/catch.hpp>
#include <map>
#include <set>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace scalelab::tasks {
namespace {

std::string ParseError(const std::string& yaml) {
  absl::StatusOr<Suite> suite = ParseSuite(yaml, "s.yaml");
  REQUIRE_FALSE(suite.ok());
  CHECK(suite.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(suite.status().message());
}

TEST_CASE("A template expands to the product of its slots, the last slot fastest",
          "[tasks][suite]") {
  absl::StatusOr<Suite> suite = ParseSuite(R"(suite: tiny
categories:
  - name: sums
    family: addition
    templates:
      - question: "{who}: {a}+{b}= {{ok}}"
        answer: "{a+b}"
        slots:
          who: [x, y]
          a: [1, 2, 3]
          b: {range: [10, 30], step: 10}
  - name: lists
    verifier: {compare: exact, extract: pattern, pattern: "\\[(.*)\\]"}
    templates:
      - question: "rev {a} {b}"
        answer: "{b} {a}"
        slots: {a: [1], b: [2]}
      - question: "nothing to fill"
        answer: "ok"
)",
                                           "tiny.yaml");
  REQUIRE(suite.ok());
  CHECK(suite->name == "tiny");
  REQUIRE(suite->categories.size() == 2);
  const SuiteCategory& sums = suite->categories[0];
  REQUIRE(sums.items.size() == 18);
  CHECK(sums.verifier.compare == Compare::kNumeric);  // addition's default
  CHECK(sums.items[0].id == "sums/0/0");
  CHECK(sums.items[0].question == "x: 1+10= {ok}");
  CHECK(sums.items[0].answer == "11");
  CHECK(sums.items[1].question == "x: 1+20= {ok}");
  CHECK(sums.items[3].question == "x: 2+10= {ok}");
  CHECK(sums.items[17].id == "sums/0/17");
  CHECK(sums.items[17].question == "y: 3+30= {ok}");
  CHECK(sums.items[17].answer == "33");
  const SuiteCategory& lists = suite->categories[1];
  CHECK(lists.verifier.extract == Extract::kPattern);
  REQUIRE(lists.items.size() == 2);
  CHECK(lists.items[0].answer == "2 1");
  CHECK(lists.items[1].id == "lists/1/0");
  CHECK(suite->num_items() == 20);
}

TEST_CASE("The shipped suite loads and its reference answers are right", "[tasks][suite]") {
  absl::StatusOr<Suite> suite =
      LoadSuite(SCALELAB_SOURCE_DIR "/examples/suites/arithmetic-v0.yaml");
  REQUIRE(suite.ok());
  CHECK(suite->name == "arithmetic-v0");
  REQUIRE(suite->categories.size() == 5);
  std::map<std::string, size_t> sizes;
  std::set<std::string> ids;
  std::map<std::string, std::string> responses;
  for (const SuiteCategory& category : suite->categories) {
    sizes[category.name] = category.items.size();
    absl::StatusOr<Verifier> verifier = Verifier::Create(category.verifier);
    REQUIRE(verifier.ok());
    for (const SuiteItem& item : category.items) {
      CHECK(ids.insert(item.id).second);
      CHECK(verifier->Verify(item.answer, item.answer).correct);
      responses[item.id] = item.answer;
    }
  }
  CHECK(sizes == std::map<std::string, size_t>{{"addition", 82},
                                               {"multiplication", 72},
                                               {"modular", 54},
                                               {"sorting", 27},
                                               {"word", 48}});
  // Independent checks of the expressions on a few families.
  for (const SuiteItem& item : suite->categories[0].items) {
    std::vector<std::string> parts = absl::StrSplit(item.question, absl::ByAnyChar("+="));
    int64_t a = 0, b = 0;
    REQUIRE(absl::SimpleAtoi(parts[0], &a));
    REQUIRE(absl::SimpleAtoi(parts[1], &b));
    CHECK(item.answer == std::to_string(a + b));
  }
  for (const SuiteItem& item : suite->categories[3].items) {
    std::vector<std::string> words =
        absl::StrSplit(item.question.substr(5), absl::ByAnyChar(" ="), absl::SkipEmpty());
    std::vector<int64_t> values;
    for (const std::string& word : words) {
      int64_t value = 0;
      REQUIRE(absl::SimpleAtoi(word, &value));
      values.push_back(value);
    }
    std::sort(values.begin(), values.end());
    CHECK(item.answer == absl::StrCat(values[0], " ", values[1], " ", values[2]));
  }
  // A run that answers everything right grades L everywhere against any reference.
  absl::StatusOr<std::vector<CategoryScore>> scores = ScoreResponses(*suite, responses);
  REQUIRE(scores.ok());
  std::map<std::string, double> reference;
  for (const CategoryScore& score : *scores) {
    CHECK(score.wrong == 0);
    reference[score.category] = 0.5;
  }
  absl::StatusOr<SuiteGrade> grade = GradeSuite(*scores, reference);
  REQUIRE(grade.ok());
  CHECK(grade->overall == Grade::kLow);
}

TEST_CASE("Grades follow v0.5's bands at their boundaries", "[tasks][suite]") {
  // Reference wrong rate 0.25: bands at 0.001 (absolute), 0.125, 0.5 and 1.0; each strict.
  CHECK(GradeWrongRate(0.0, 0.25) == Grade::kLow);
  CHECK(GradeWrongRate(0.000999, 0.25) == Grade::kLow);
  CHECK(GradeWrongRate(0.001, 0.25) == Grade::kModerateLow);
  CHECK(GradeWrongRate(0.124, 0.25) == Grade::kModerateLow);
  CHECK(GradeWrongRate(0.125, 0.25) == Grade::kModerate);
  CHECK(GradeWrongRate(0.25, 0.25) == Grade::kModerate);  // as good as the reference
  CHECK(GradeWrongRate(0.499, 0.25) == Grade::kModerate);
  CHECK(GradeWrongRate(0.5, 0.25) == Grade::kModerateHigh);
  CHECK(GradeWrongRate(0.999, 0.25) == Grade::kModerateHigh);
  CHECK(GradeWrongRate(1.0, 0.25) == Grade::kHigh);
  // A perfect reference leaves only the absolute band.
  CHECK(GradeWrongRate(0.0009, 0.0) == Grade::kLow);
  CHECK(GradeWrongRate(0.001, 0.0) == Grade::kHigh);
  CHECK(GradeName(Grade::kModerateHigh) == "MH");
  CHECK(GradeName(Grade::kLow) == "L");
}

TEST_CASE("A suite's grade is its worst category grade", "[tasks][suite]") {
  const std::vector<CategoryScore> scores = {
      {"addition", 100, 0}, {"sorting", 200, 50}, {"word", 40, 30}};
  const std::map<std::string, double> reference = {
      {"addition", 0.1}, {"sorting", 0.25}, {"word", 0.2}};
  absl::StatusOr<SuiteGrade> grade = GradeSuite(scores, reference);
  REQUIRE(grade.ok());
  REQUIRE(grade->categories.size() == 3);
  CHECK(grade->categories[0].grade == Grade::kLow);
  CHECK(grade->categories[1].wrong_rate == 0.25);
  CHECK(grade->categories[1].grade == Grade::kModerate);
  CHECK(grade->categories[2].wrong_rate == 0.75);
  CHECK(grade->categories[2].grade == Grade::kModerateHigh);
  CHECK(grade->overall == Grade::kModerateHigh);
  // A run graded against itself is M in every category it gets anything wrong in.
  absl::StatusOr<SuiteGrade> self = GradeSuite(scores, WrongRates(scores));
  REQUIRE(self.ok());
  CHECK(self->overall == Grade::kModerate);

  CHECK(std::string(GradeSuite(scores, {{"addition", 0.1}}).status().message()) ==
        "grade: category sorting has no reference wrong rate");
  CHECK(std::string(GradeSuite({{"addition", 0, 0}}, reference).status().message())
            .find("grade: category addition: expected items >= 1") == 0);
  CHECK(std::string(GradeSuite(scores, {{"addition", 0.1}, {"sorting", 1.5}, {"word", 0}})
                        .status()
                        .message()) ==
        "grade: category sorting: reference wrong rate 1.5 is not "
        "in [0, 1]");
  CHECK_FALSE(GradeSuite({}, reference).ok());
}

TEST_CASE("Responses are scored with each category's verifier", "[tasks][suite]") {
  absl::StatusOr<Suite> suite = ParseSuite(R"(suite: s
categories:
  - name: addition
    templates:
      - {question: "{a}+1=", answer: "{a+1}", slots: {a: [1, 2, 3]}}
reference:
  run: ref-run
  wrong_rate: {addition: 0.5}
)",
                                           "s.yaml");
  REQUIRE(suite.ok());
  CHECK(suite->reference_run == "ref-run");
  CHECK(suite->reference_wrong_rates.at("addition") == 0.5);
  std::map<std::string, std::string> responses = {
      {"addition/0/0", "so 1+1 is 2"}, {"addition/0/1", "4"}, {"addition/0/2", "4."}};
  absl::StatusOr<std::vector<CategoryScore>> scores = ScoreResponses(*suite, responses);
  REQUIRE(scores.ok());
  CHECK((*scores)[0].items == 3);
  CHECK((*scores)[0].wrong == 1);
  absl::StatusOr<SuiteGrade> grade = GradeSuite(*scores, suite->reference_wrong_rates);
  REQUIRE(grade.ok());
  CHECK(grade->overall == Grade::kModerate);  // 1/3 against 0.5: within [0.25, 1.0)
  responses.erase("addition/0/1");
  CHECK(std::string(ScoreResponses(*suite, responses).status().message()) ==
        "suite s: no response for item addition/0/1");
}

TEST_CASE("Bad suite files are refused naming the line, the field and what was expected",
          "[tasks][suite]") {
  const std::string head = "suite: s\ncategories:\n";
  CHECK(ParseError("suite: s\n") ==
        "s.yaml:1: categories: expected a non-empty list of categories, got a mapping");
  CHECK(ParseError("suite: s\nversion: 2\ncategories: []\n") ==
        "s.yaml:2: version: unknown field (expected suite, description, categories, reference)");
  CHECK(ParseError("suite: [s\n").rfind("s.yaml:", 0) == 0);
  CHECK(ParseError(head + "  - name: poems\n    templates:\n      - {question: q, answer: a}\n") ==
        "s.yaml:3: categories[0].verifier: no default verifier for task family \"poems\" (known: "
        "addition, multiplication, modular, sorting, word, gsm8k, user); name one");
  CHECK(ParseError(head + "  - name: addition\n    templates: []\n") ==
        "s.yaml:4: categories[0].templates: expected a non-empty list of templates, got a list");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - question: \"{a}+{c}=\"\n"
                          "        answer: \"{a+c}\"\n        slots: {a: [1]}\n") ==
        "s.yaml:5: categories[0].templates[0]: the texts use slot \"c\", which slots does not "
        "define");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - question: \"{a}+1=\"\n"
                          "        answer: \"{a+1}\"\n        slots:\n          a: [1]\n"
                          "          b: [2]\n") ==
        "s.yaml:9: categories[0].templates[0].slots.b: defined but used by neither question nor "
        "answer");
  CHECK(ParseError(head +
                   "  - name: addition\n    templates:\n      - question: \"{a}=\"\n"
                   "        answer: \"{a}\"\n        slots:\n          a: {range: [5, 1]}\n") ==
        "s.yaml:8: categories[0].templates[0].slots.a.range: expected [lo, hi] with integers lo "
        "<= hi, got a list");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - question: \"{a}=\"\n"
                          "        answer: \"{a}\"\n        slots:\n          a: []\n") ==
        "s.yaml:8: categories[0].templates[0].slots.a: expected a non-empty list of values or "
        "{range: [lo, hi], step: s} with integers lo <= hi, s >= 1, got a list");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - question: \"{a}/0=\"\n"
                          "        answer: \"{a/0}\"\n        slots: {a: [4]}\n") ==
        "s.yaml:6: categories[0].templates[0].answer: expression \"a/0\": division by zero at "
        "offset 3 (item addition/0/0)");
  CHECK(ParseError(head + "  - name: word\n    templates:\n      - question: \"{n} has\"\n"
                          "        answer: \"{n+1}\"\n        slots: {n: [Ann]}\n") ==
        "s.yaml:6: categories[0].templates[0].answer: expression \"n+1\": slot n is \"Ann\", not "
        "an integer at offset 1 (item word/0/0)");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - question: \"{a+}\"\n"
                          "        answer: \"1\"\n        slots: {a: [1]}\n") ==
        "s.yaml:5: categories[0].templates[0].question: expression \"a+\": expected a number, a "
        "slot name or '(' at offset 2");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - question: \"{a\"\n"
                          "        answer: \"1\"\n        slots: {a: [1]}\n")
            .find("unmatched '{' at offset 0") != std::string::npos);
  CHECK(ParseError(head +
                   "  - name: addition\n    templates:\n      - {question: q, answer: a}\n"
                   "  - name: addition\n    templates:\n      - {question: q, answer: a}\n") ==
        "s.yaml:6: categories[1].name: \"addition\" names two categories");
  CHECK(ParseError(head + "  - name: addition\n    verifier: {compare: fuzzy}\n    templates:\n"
                          "      - {question: q, answer: a}\n") ==
        "s.yaml:4: categories[0].verifier.compare: compare: expected exact or numeric, got "
        "\"fuzzy\"");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - question: \"{a}{b}{c}\"\n"
                          "        answer: \"1\"\n        slots:\n"
                          "          a: {range: [1, 100]}\n          b: {range: [1, 100]}\n"
                          "          c: {range: [1, 100]}\n")
            .find("the suite expands to more than 200000 items") != std::string::npos);
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - {question: q, answer: a}\n"
                          "reference:\n  wrong_rate: {sorting: 0.2}\n") ==
        "s.yaml:7: reference.wrong_rate.sorting: no category of the suite has this name");
  CHECK(ParseError(head + "  - name: addition\n    templates:\n      - {question: q, answer: a}\n"
                          "reference:\n  wrong_rate: {addition: 2}\n") ==
        "s.yaml:7: reference.wrong_rate.addition: expected a rate in [0, 1], got \"2\"");
  absl::StatusOr<Suite> missing = LoadSuite("/nonexistent/suite.yaml");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace scalelab::tasks
