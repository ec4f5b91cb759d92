// `scalelab export`'s tidy tables from synthetic messages: columns, CSV quoting, JSON records.
#include "services/cli/export.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "tests/cli/synthetic_sweep.h"

namespace scalelab::cli {
namespace {

using Catch::Matchers::Contains;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_CASE("CSV fields are quoted only when they need it, with quotes doubled",
          "[unit][cli][export]") {
  CHECK(CsvField("web") == "web");
  CHECK(CsvField("") == "");
  CHECK(CsvField("a,b") == "\"a,b\"");
  CHECK(CsvField("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(CsvField("two\nlines") == "\"two\nlines\"");
  CHECK(CsvField("cr\r") == "\"cr\r\"");
  CHECK(CsvField(" padded") == "\" padded\"");
  CHECK(CsvField("caf\xC3\xA9") == "caf\xC3\xA9");
}

TEST_CASE("numbers are written in the shortest form that reads back exactly",
          "[unit][cli][export]") {
  CHECK(ShortestDouble(0.1) == "0.1");
  CHECK(ShortestDouble(4096) == "4096");
  CHECK(ShortestDouble(1e19) == "1e+19");
  CHECK(ShortestDouble(2.0 / 3) == "0.6666666666666666");
  for (double value : {0.1 + 0.2, 1.0 / 3, 3.0e-7, 123456789.123456789}) {
    CHECK(std::strtod(ShortestDouble(value).c_str(), nullptr) == value);
  }
  CHECK(JsonString("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST_CASE("export of runs has one row per run with overrides, record, losses and energy",
          "[unit][cli][export]") {
  SyntheticSweep sweep;
  std::vector<v1::Run> runs = {sweep.Run(0), sweep.Run(1)};
  runs[1].set_val_loss(std::nan(""));                       // never evaluated: an empty field
  (*runs[1].mutable_overrides())["note"] = "big, \"new\"";  // only run 101 has this key
  runs[1].mutable_overrides()->erase("data.mix");
  runs[1].set_attempt(3);

  TidyTable table = RunTable(runs);
  CHECK(table.columns ==
        std::vector<std::string>{"run_id", "index", "state", "data.mix", "model.d_model", "note",
                                 "n_params", "n_params_total", "tokens", "flops", "flops_per_token",
                                 "train_loss", "val_loss", "energy_j", "attempts"});
  std::ostringstream csv;
  WriteCsv(csv, table);
  const std::vector<std::string> lines = Lines(csv.str());
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] ==
        "run_id,index,state,data.mix,model.d_model,note,n_params,n_params_total,tokens,flops,"
        "flops_per_token,train_loss,val_loss,energy_j,attempts");
  CHECK(lines[1].rfind("100,0,SUCCEEDED,web,64,,1000000,1065536,300000000,1.8e+15,6000000,", 0) ==
        0);
  CHECK_THAT(lines[1], Contains(",1000,1"));
  CHECK(lines[2].rfind("101,1,SUCCEEDED,,128,\"big, \"\"new\"\"\",4000000,", 0) == 0);
  CHECK_THAT(lines[2], Contains(",,2000,3"));  // val_loss missing, energy, attempts

  SECTION("as JSON records, with null for missing values and numbers as numbers") {
    std::ostringstream json;
    WriteJson(json, table);
    const std::string text = json.str();
    CHECK(text.rfind("[\n{\"run_id\": 100, \"index\": 0, \"state\": \"SUCCEEDED\", "
                     "\"data.mix\": \"web\", \"model.d_model\": 64, \"note\": null,",
                     0) == 0);
    CHECK_THAT(text, Contains("\"note\": \"big, \\\"new\\\"\""));
    CHECK_THAT(text, Contains("\"val_loss\": null"));
    CHECK(text.substr(text.size() - 4) == "}\n]\n");
  }
  SECTION("a record without tokens falls back to the run's last reported count") {
    runs[0].mutable_record()->set_tokens(0);
    runs[0].set_tokens(12345);
    TidyTable fallback = RunTable({runs[0]});
    CHECK(fallback.columns[7] == "tokens");
    CHECK(std::get<double>(fallback.rows[0][7]) == 12345);
  }
}

TEST_CASE("export of points has one row per point and metric with the run's overrides",
          "[unit][cli][export]") {
  SyntheticSweep sweep;
  TidyTable table = PointTable(
      {{"val_loss", sweep.Curves("val_loss")}, {"train_loss", sweep.Curves("train_loss")}});
  CHECK(table.columns == std::vector<std::string>{"run_id", "attempt", "step", "tokens", "name",
                                                  "value", "wall_time_s", "data.mix",
                                                  "model.d_model"});
  const size_t per_metric = sweep.n_params.size() * (sweep.tokens.size() + 1);
  CHECK(table.rows.size() == 2 * per_metric);
  std::ostringstream csv;
  WriteCsv(csv, table);
  const std::vector<std::string> lines = Lines(csv.str());
  CHECK(lines[1] == "100,1,0,0,val_loss,5.5,0,web,64");
  CHECK(lines[2].rfind("100,1,100,1000000,val_loss,", 0) == 0);
  CHECK(lines[1 + per_metric].rfind("100,1,0,0,train_loss,", 0) == 0);

  SECTION("a point without a name takes the metric asked for") {
    v1::GetSweepCurvesResponse curves = sweep.Curves();
    curves.mutable_curves(0)->mutable_points(0)->clear_name();
    TidyTable named = PointTable({{"val_loss", curves}});
    CHECK(std::get<std::string>(named.rows[0][4]) == "val_loss");
  }
  SECTION("no curves is a header alone, and JSON []") {
    TidyTable empty = PointTable({{"val_loss", {}}});
    std::ostringstream json;
    WriteJson(json, empty);
    CHECK(json.str() == "[]\n");
  }
}

}  // namespace
}  // namespace scalelab::cli
