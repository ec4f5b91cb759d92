#include "services/analysis/csv_points.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace scalelab::analysis {
namespace {

TEST_CASE("A CSV with N, C and loss columns derives D = C / 6N", "[analysis]") {
  absl::StatusOr<std::vector<ScalingPoint>> points = ParseScalingPointsCsv(
      "x,Model Size,Training FLOP,loss\n"
      "1,1e9,6e18,2.5\r\n"
      "\n"
      "2,2e9,2.4e19,2.3\n",
      "runs.csv");
  REQUIRE(points.ok());
  REQUIRE(points->size() == 2);
  CHECK((*points)[0].n_params == 1e9);
  CHECK((*points)[0].tokens == Approx(1e9));
  CHECK((*points)[0].flops == 6e18);
  CHECK((*points)[1].tokens == Approx(2e9));
  CHECK((*points)[1].loss == 2.3);
}

TEST_CASE("A CSV with N and D derives C, reads run ids and quoted fields", "[analysis]") {
  absl::StatusOr<std::vector<ScalingPoint>> points = ParseScalingPointsCsv(
      "name, n_params ,tokens,VAL_LOSS,run_id\n"
      "\"small, \"\"v2\"\"\",1e8,2e9,3.1,17\n",
      "runs.csv");
  REQUIRE(points.ok());
  REQUIRE(points->size() == 1);
  CHECK((*points)[0].flops == Approx(6 * 1e8 * 2e9));
  CHECK((*points)[0].loss == 3.1);
  CHECK((*points)[0].run_id == 17);
}

TEST_CASE("A CSV with only C and loss is enough for the compute law", "[analysis]") {
  absl::StatusOr<std::vector<ScalingPoint>> points =
      ParseScalingPointsCsv("flops,loss\n1e20,2.9\n", "c.csv");
  REQUIRE(points.ok());
  CHECK((*points)[0].flops == 1e20);
  CHECK((*points)[0].n_params == 0);
}

TEST_CASE("Custom column names replace the aliases", "[analysis]") {
  CsvOptions options;
  options.columns.loss = {"final_loss"};
  options.delimiter = ';';
  absl::StatusOr<std::vector<ScalingPoint>> points =
      ParseScalingPointsCsv("N;D;final_loss\n1e8;1e9;3\n", "x.csv", options);
  REQUIRE(points.ok());
  CHECK((*points)[0].loss == 3);
}

TEST_CASE("CSV errors name the file, line, column and value", "[analysis]") {
  auto error = [](const std::string& text) {
    return std::string(ParseScalingPointsCsv(text, "runs.csv").status().message());
  };
  CHECK(error("N,D,loss\n1e8,1e9,3\n1e8,1e9,abc\n") ==
        "runs.csv:3: column \"loss\": expected a positive number, got \"abc\"");
  CHECK(error("N,D,loss\n1e8,-1,3\n") ==
        "runs.csv:2: column \"D\": expected a positive number, got \"-1\"");
  CHECK(error("N,D,loss\n1e8,1e9\n") == "runs.csv:2: expected 3 fields (as the header), got 2");
  CHECK(error("N,D,loss\n\"1e8,1e9,3\n") == "runs.csv:2: unterminated quote");
  CHECK(error("N,D\n1,2\n").find("runs.csv:1: no loss column") == 0);
  CHECK(error("N,loss\n1,2\n").find("runs.csv:1: expected two of N") == 0);
  CHECK(error("N,D,loss,run_id\n1,2,3,x7\n") ==
        "runs.csv:2: column \"run_id\": expected an integer, got \"x7\"");
  CHECK(error("") == "runs.csv: no header row");
  const std::string long_value(500, '9');
  CHECK(error("N,D,loss\n1,2," + long_value + "x\n").find("(421 more bytes)") != std::string::npos);
}

TEST_CASE("Rows with an empty or zero quantity can be left out and their lines reported",
          "[analysis]") {
  const std::string text =
      "run_id,n_params,tokens,val_loss\n1,1e6,1e9,3.1\n2,0,1e9,\n3,2e6,1e9,\n4,4e6,2e9,2.5\n";
  CHECK_FALSE(ParseScalingPointsCsv(text, "export.csv").ok());
  std::vector<int> skipped;
  CsvOptions options;
  options.skip_incomplete_rows = true;
  options.skipped_lines = &skipped;
  absl::StatusOr<std::vector<ScalingPoint>> points =
      ParseScalingPointsCsv(text, "export.csv", options);
  REQUIRE(points.ok());
  REQUIRE(points->size() == 2);
  CHECK(points->at(1).run_id == 4);
  CHECK(skipped == std::vector<int>{3, 4});
  // Other bad values are still refused.
  CHECK_FALSE(ParseScalingPointsCsv("n_params,tokens,loss\n1e6,big,3\n", "bad.csv", options).ok());
}

TEST_CASE("Reading a missing CSV file is NotFound", "[analysis]") {
  CHECK(ReadScalingPointsCsv("/nonexistent/runs.csv").status().code() ==
        absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace scalelab::analysis
