#include "tasks/jsonl_loader.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

namespace scalelab::tasks {
namespace {

// A file in a fresh temporary folder, removed with the fixture.
class TempFile {
 public:
  explicit TempFile(const std::string& contents, const std::string& name = "set.jsonl") {
    std::string pattern = (std::filesystem::temp_directory_path() / "tasks-test-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    dir_ = pattern;
    path_ = (dir_ / name).string();
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~TempFile() { std::filesystem::remove_all(dir_); }
  const std::string& path() const { return path_; }

 private:
  std::filesystem::path dir_;
  std::string path_;
};

std::string LoadError(const std::string& contents) {
  TempFile file(contents);
  absl::StatusOr<std::vector<Problem>> problems = LoadProblemsJsonl(file.path());
  REQUIRE_FALSE(problems.ok());
  CHECK(problems.status().code() == absl::StatusCode::kInvalidArgument);
  // Errors start with the file's path.
  const std::string message(problems.status().message());
  REQUIRE(message.rfind(file.path() + ":", 0) == 0);
  return message.substr(file.path().size());
}

TEST_CASE("A JSONL problem set loads with GSM8K answers, splits, ids and families",
          "[tasks][loader]") {
  TempFile file(
      "{\"question\": \"Tom has 3 bags of 4 apples. How many apples?\", \"answer\": \"3 bags of "
      "4 is 3*4=12.\\n#### 12\"}\n"
      "\n"
      "{\"question\": \"12+30=\", \"answer\": 42, \"split\": \"test\", \"id\": \"q7\", "
      "\"family\": \"addition\", \"extra\": [1, 2]}\n"
      "   {\"question\": \"Name the colour: \\\"r\\u0065d\\\"\", \"answer\": \" red \", "
      "\"category\": \"colours\", \"split\": \"held_out\"}   \n"
      "{\"question\": \"Pay $1,234?\", \"answer\": \"#### 1,234\"}\n",
      "mini.set.jsonl");
  absl::StatusOr<std::vector<Problem>> problems = LoadProblemsJsonl(file.path());
  REQUIRE(problems.ok());
  REQUIRE(problems->size() == 4);
  const Problem& gsm = (*problems)[0];
  CHECK(gsm.answer == "12");
  CHECK(gsm.solution == "3 bags of 4 is 3*4=12.");
  CHECK(gsm.family == "gsm8k");
  CHECK(gsm.id == "mini-1");
  CHECK(gsm.split == SplitOfQuestion(gsm.question));
  const Problem& sum = (*problems)[1];
  CHECK(sum.question == "12+30=");
  CHECK(sum.answer == "42");
  CHECK(sum.solution.empty());
  CHECK(sum.split == Split::kTest);
  CHECK(sum.id == "q7");
  CHECK(sum.family == "addition");
  const Problem& colour = (*problems)[2];
  CHECK(colour.question == "Name the colour: \"red\"");
  CHECK(colour.answer == "red");
  CHECK(colour.family == "colours");
  CHECK(colour.split == Split::kHeldOut);
  CHECK(colour.id == "mini-4");  // the line number, blank lines counted
  CHECK((*problems)[3].answer == "1,234");

  LoadOptions options;
  options.family = "mine";
  absl::StatusOr<std::vector<Problem>> named = LoadProblemsJsonl(file.path(), options);
  REQUIRE(named.ok());
  CHECK((*named)[0].family == "mine");
  CHECK((*named)[1].family == "addition");  // the line's own field wins
}

TEST_CASE("A missing problem file is NotFound naming the path", "[tasks][loader]") {
  absl::StatusOr<std::vector<Problem>> problems = LoadProblemsJsonl("/nonexistent/set.jsonl");
  CHECK(problems.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(problems.status().message()) ==
        "/nonexistent/set.jsonl: cannot open the problem set");
}

TEST_CASE("Each bad line is refused naming the file, the line and what was wrong",
          "[tasks][loader]") {
  const std::string good = "{\"question\": \"1+1=\", \"answer\": \"2\"}\n";
  CHECK(LoadError(good + "question: 2+2=\n") ==
        ":2: expected a JSON object ({...}), got \"question: 2+2=\"");
  const std::string unclosed = LoadError(good + good + "{\"question\": \"2+2=\", \"answer\": 4\n");
  INFO(unclosed);
  CHECK(unclosed.rfind(":3: not valid JSON at column", 0) == 0);
  // yaml-cpp reads an absent value as null: reported as missing.
  CHECK(LoadError("{\"question\": \"2+2=\", \"answer\": }\n") == ":1: missing \"answer\"");
  CHECK(LoadError("{\"answer\": \"2\"}\n") == ":1: missing \"question\"");
  CHECK(LoadError("{\"question\": \"1+1=\"}\n") == ":1: missing \"answer\"");
  CHECK(LoadError("{\"question\": \"  \", \"answer\": \"2\"}\n") == ":1: \"question\" is empty");
  CHECK(LoadError("{\"question\": \"1+1=\", \"answer\": [2]}\n") ==
        ":1: \"answer\": expected a string or a number, got a list");
  CHECK(LoadError("{\"question\": {\"text\": \"1+1=\"}, \"answer\": 2}\n") ==
        ":1: \"question\": expected a string or a number, got an object");
  CHECK(LoadError("{\"question\": \"1+1=\", \"answer\": \"2\", \"split\": \"dev\"}\n") ==
        ":1: split: expected one of train, held_out, test, got \"dev\"");
  CHECK(LoadError("{\"question\": \"1+1=\", \"answer\": \"so 2 ####  \"}\n") ==
        ":1: \"answer\": nothing after \"####\" (expected the final answer)");
  CHECK(LoadError("{\"question\": \"1+1=\", \"answer\": \"2\", \"split\": \"train\"}\n"
                  "{\"question\": \" 1+1= \", \"answer\": \"2\", \"split\": \"test\"}\n") ==
        ":2: the question of line 1 again, in split test (line 1 has train); a question belongs "
        "to one split");
  CHECK(LoadError("\n  \n") == ": no problems (empty file)");
}

}  // namespace
}  // namespace scalelab::tasks
