#include "services/cli/tasks_command.h"

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "absl/strings/str_split.h"
#include "tasks/jsonl_loader.h"

namespace scalelab::cli {
namespace {

TEST_CASE("tasks sample prints the split's problems as a table", "[cli][tasks]") {
  TasksSampleOptions options;
  options.task = "addition";
  options.generator.digits = 3;
  options.n = 5;
  options.split = "test";
  std::ostringstream out;
  REQUIRE(RunTasksSample(options, out).ok());
  const std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  REQUIRE(lines.size() == 5);
  absl::StatusOr<std::vector<tasks::Problem>> problems =
      tasks::GenerateProblems(options.generator, tasks::Split::kTest, 0, 5);
  REQUIRE(problems.ok());
  for (size_t i = 0; i < 5; ++i) {
    CHECK(lines[i] ==
          (*problems)[i].id + "\t" + (*problems)[i].question + "\t" + (*problems)[i].answer);
  }
}

TEST_CASE("tasks sample --output json is JSONL the loader reads back", "[cli][tasks]") {
  TasksSampleOptions options;
  options.task = "word";
  options.split = "held_out";
  options.n = 4;
  options.first = 10;
  options.json = true;
  std::ostringstream out;
  REQUIRE(RunTasksSample(options, out).ok());
  absl::StatusOr<std::vector<tasks::Problem>> loaded =
      tasks::ParseProblemsJsonl(out.str(), "sample.jsonl");
  REQUIRE(loaded.ok());
  options.generator.family = tasks::TaskFamily::kWord;
  absl::StatusOr<std::vector<tasks::Problem>> generated =
      tasks::GenerateProblems(options.generator, tasks::Split::kHeldOut, 10, 4);
  REQUIRE(generated.ok());
  REQUIRE(loaded->size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK((*loaded)[i].id == (*generated)[i].id);
    CHECK((*loaded)[i].question == (*generated)[i].question);
    CHECK((*loaded)[i].answer == (*generated)[i].answer);
    CHECK((*loaded)[i].family == "word");
    CHECK((*loaded)[i].split == tasks::Split::kHeldOut);
  }
}

TEST_CASE("tasks sample refuses bad flags naming them", "[cli][tasks]") {
  std::ostringstream out;
  TasksSampleOptions options;
  options.task = "division";
  CHECK(std::string(RunTasksSample(options, out).message()).find("--task: expected one of") == 0);
  options = {};
  options.split = "validation";
  CHECK(std::string(RunTasksSample(options, out).message()).find("--split: expected one of") == 0);
  options = {};
  options.n = 0;
  CHECK(std::string(RunTasksSample(options, out).message()) == "--n: expected >= 1, got 0");
  options = {};
  options.generator.digits = 101;
  CHECK(std::string(RunTasksSample(options, out).message()) ==
        "--digits: expected an integer in [1, 100], got 101");
  CHECK(out.str().empty());
}

TEST_CASE("tasks suite summarises the shipped suite", "[cli][tasks]") {
  std::ostringstream out;
  REQUIRE(RunTasksSuite(SCALELAB_SOURCE_DIR "/examples/suites/arithmetic-v0.yaml", out).ok());
  const std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  REQUIRE(lines.size() == 6);
  CHECK(lines[0] == "suite arithmetic-v0: 283 items in 5 categories");
  CHECK(lines[1] == "  addition\t82 items\tnumeric(last_number)\te.g. 10+3= -> 13");
  CHECK(lines[4] == "  sorting\t27 items\texact(whole)\te.g. sort 5 3 1= -> 1 3 5");
}

}  // namespace
}  // namespace scalelab::cli
