// The numbers behind `scalelab plot` (interpolation, isoFLOP minima, the compute-optimal
// frontier, the series built from a sweep's curves) and their drawing with the real gnuplot.
#include "services/cli/plot.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "services/cli/gnuplot.h"
#include "tests/cli/synthetic_sweep.h"

namespace scalelab::cli {
namespace {

using Catch::Matchers::Contains;

std::vector<XY> PowerLaw(double scale, double exponent, const std::vector<double>& xs) {
  std::vector<XY> points;
  for (double x : xs) points.push_back({x, scale * std::pow(x, -exponent)});
  return points;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A fresh folder under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/scalelab_plot_test_XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(path_)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

 private:
  std::string path_;
};

TEST_CASE("interpolation along a curve is linear in log x and log y, and NaN outside it",
          "[unit][cli][plot]") {
  const std::vector<XY> curve = {{1, 10}, {100, 1}, {1000, 0.5}};
  CHECK(InterpolateLogLog(curve, 10) == Approx(std::sqrt(10.0)));  // a straight line would say 5.5
  CHECK(InterpolateLogLog(curve, 1) == 10);
  CHECK(InterpolateLogLog(curve, 100) == 1);
  CHECK(InterpolateLogLog(curve, 1000) == 0.5);
  CHECK(std::isnan(InterpolateLogLog(curve, 0.5)));
  CHECK(std::isnan(InterpolateLogLog(curve, 1001)));
  CHECK(std::isnan(InterpolateLogLog({}, 1)));
  // A power law is a straight line in log-log, so it is interpolated exactly.
  const std::vector<XY> power = PowerLaw(7, 0.3, {1, 10, 1000});
  CHECK(InterpolateLogLog(power, 42) == Approx(7 * std::pow(42, -0.3)));
}

TEST_CASE("isoFLOP minima pick the run with the lowest interpolated loss at each compute level",
          "[unit][cli][plot]") {
  // Run 1 is steeper; the two cross at x = 2.5^5 = 97.66. Points are sparse, so each level is
  // interpolated, and exact because both are power laws.
  RunSeries shallow{2, 2e6, "", PowerLaw(4, 0.3, {10, 30, 300, 3000, 10000})};
  RunSeries steep{1, 1e6, "", PowerLaw(10, 0.5, {1, 5, 50, 500, 1000})};
  RunSeries alone{3, 3e6, "", PowerLaw(1, 0.1, {20000, 50000})};  // overlaps nobody
  const std::vector<IsoFlopMinimum> minima = IsoFlopMinima({steep, shallow, alone}, 9);
  // Two runs overlap over [10, 1000] (second-smallest start, second-largest end).
  REQUIRE(minima.size() == 9);
  CHECK(minima.front().flops == 10);
  CHECK(minima.back().flops == 1000);
  for (const IsoFlopMinimum& minimum : minima) {
    INFO(minimum.flops);
    const double steep_loss = 10 * std::pow(minimum.flops, -0.5);
    const double shallow_loss = 4 * std::pow(minimum.flops, -0.3);
    CHECK(minimum.loss == Approx(std::min(steep_loss, shallow_loss)));
    CHECK(minimum.run_id == (steep_loss < shallow_loss ? 1 : 2));
    CHECK(minimum.n_params == (steep_loss < shallow_loss ? 1e6 : 2e6));
    CHECK(minimum.runs_compared == 2);
  }
  CHECK(minima.front().run_id == 2);  // below the crossing the shallow run is lower
  CHECK(minima.back().run_id == 1);

  SECTION("one run, or none, has no minima") {
    CHECK(IsoFlopMinima({steep}, 5).empty());
    CHECK(IsoFlopMinima({}, 5).empty());
  }
}

TEST_CASE("the chinchilla frontier splits C = 6 N D optimally", "[unit][cli][plot]") {
  SECTION("symmetric terms split the budget evenly") {
    const std::map<std::string, double> symmetric = {
        {"E", 1.5}, {"A", 100}, {"alpha", 0.5}, {"B", 100}, {"beta", 0.5}};
    const ComputeOptimal optimum = ChinchillaOptimum(symmetric, 6e18);
    CHECK(optimum.n_params == Approx(1e9));
    CHECK(optimum.tokens == Approx(1e9));
    CHECK(optimum.loss == Approx(1.5 + 2 * 100 / std::sqrt(1e9)));
  }
  SECTION("Hoffmann et al.'s fit: no other split of the budget does better") {
    const std::map<std::string, double> hoffmann = {
        {"E", 1.69}, {"A", 406.4}, {"alpha", 0.34}, {"B", 410.7}, {"beta", 0.28}};
    auto loss = [&](double n, double d) {
      return 1.69 + 406.4 / std::pow(n, 0.34) + 410.7 / std::pow(d, 0.28);
    };
    for (double flops : {1e18, 1e21, 1e24}) {
      const ComputeOptimal optimum = ChinchillaOptimum(hoffmann, flops);
      CHECK(optimum.n_params * optimum.tokens == Approx(flops / 6));
      CHECK(optimum.loss == Approx(loss(optimum.n_params, optimum.tokens)));
      for (double factor : {0.8, 1.25}) {
        const double n = optimum.n_params * factor;
        CHECK(loss(n, flops / 6 / n) > optimum.loss);
      }
      // N_opt grows as C^(beta / (alpha + beta)).
      const ComputeOptimal tenfold = ChinchillaOptimum(hoffmann, 10 * flops);
      CHECK(tenfold.n_params / optimum.n_params == Approx(std::pow(10, 0.28 / 0.62)));
    }
  }
  SECTION("missing or non-positive parameters give NaN") {
    CHECK(std::isnan(ChinchillaOptimum({{"E", 1}}, 1e20).loss));
    CHECK(std::isnan(
        ChinchillaOptimum({{"E", 1}, {"A", 1}, {"alpha", 0}, {"B", 1}, {"beta", 1}}, 1e20)
            .n_params));
  }
  CHECK(ComputeLawLoss({{"E", 2}, {"k", 100}, {"gamma", 0.1}}, 1e10) == Approx(2 + 100 * 0.1));
}

TEST_CASE("log-spaced levels and decade budgets include their ends", "[unit][cli][plot]") {
  const std::vector<double> levels = LogSpace(10, 1000, 3);
  REQUIRE(levels.size() == 3);
  CHECK(levels[0] == 10);
  CHECK(levels[1] == Approx(100));
  CHECK(levels[2] == 1000);
  CHECK(DecadesBetween(3e17, 2e20) == std::vector<double>{1e18, 1e19, 1e20});
  CHECK(DecadesBetween(1e18, 1e18) == std::vector<double>{1e18});
  CHECK(DecadesBetween(2, 3).empty());
}

TEST_CASE(
    "plot series put each run against C = flops_per_token x tokens and leave out runs "
    "without a record",
    "[unit][cli][plot]") {
  SyntheticSweep sweep;
  v1::GetSweepCurvesResponse curves = sweep.Curves();
  v1::RunCurve* no_record = curves.add_curves();
  no_record->mutable_run()->set_id(999);
  no_record->add_points()->set_tokens(1000);
  no_record->mutable_points(0)->set_value(3);

  absl::StatusOr<PlotData> data = BuildPlotData(sweep.sweep, curves, sweep.Fits(), {});
  REQUIRE(data.ok());
  REQUIRE(data->runs.size() == sweep.n_params.size());
  const RunSeries& first = data->runs.front();
  CHECK(first.n_params == sweep.n_params[0]);
  // Step 0 (no tokens) has no place on a log axis.
  CHECK(first.points.size() == sweep.tokens.size());
  CHECK(first.points.front().x == Approx(6 * sweep.n_params[0] * sweep.tokens[0]));
  CHECK(first.points.front().y == Approx(sweep.Loss(sweep.n_params[0], sweep.tokens[0])));
  REQUIRE(data->notes.size() == 1);
  CHECK_THAT(data->notes[0], Contains("run 999") && Contains("no run record"));

  // The law follows the frontier of the fit and never lies above the curves' envelope there.
  REQUIRE(data->laws.size() == 1);
  CHECK_THAT(data->laws[0].label, Contains("chinchilla"));
  REQUIRE(data->frontiers.size() == 1);
  for (const XY& point : data->laws[0].points) {
    const ComputeOptimal optimum = ChinchillaOptimum(sweep.Parameters(), point.x);
    CHECK(point.y == Approx(optimum.loss));
  }
  CHECK(
      data->frontiers[0].points.front().y ==
      Approx(ChinchillaOptimum(sweep.Parameters(), data->frontiers[0].points.front().x).n_params));
  CHECK_FALSE(data->isoflop.empty());
  for (const IsoFlopMinimum& minimum : data->isoflop) {
    CHECK(minimum.loss >= ChinchillaOptimum(sweep.Parameters(), minimum.flops).loss - 1e-9);
  }
  CHECK_FALSE(data->allocations.empty());

  SECTION("a metric other than the fitted one is drawn without the fit, saying so") {
    PlotDataOptions options;
    options.metric = "train_loss";
    auto train = BuildPlotData(sweep.sweep, sweep.Curves(), sweep.Fits(), options);
    REQUIRE(train.ok());
    CHECK(train->laws.empty());
    REQUIRE(train->notes.size() == 1);
    CHECK(train->notes[0] == "the fits are of val_loss; not drawn over train_loss");
  }
  SECTION("against tokens, runs carry their fit group") {
    sweep.sweep.mutable_spec()->mutable_fit()->add_group_by("data.mix");
    PlotDataOptions options;
    options.axis = PlotAxis::kTokens;
    auto tokens = BuildPlotData(sweep.sweep, sweep.Curves(), sweep.Fits(), options);
    REQUIRE(tokens.ok());
    CHECK(tokens->groups == std::vector<std::string>{"data.mix=books", "data.mix=web"});
    CHECK(tokens->runs.front().points.front().x == sweep.tokens[0]);
    CHECK(tokens->laws.empty());
    CHECK(tokens->isoflop.empty());
  }
  SECTION("a sweep with no points yet is an error naming the metric") {
    v1::GetSweepCurvesResponse empty;
    auto none = BuildPlotData(sweep.sweep, empty, {}, {});
    CHECK(none.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(none.status().message() == "sweep 7 has no val_loss points to plot yet");
  }
}

// gnuplot's SVG, checked for well-formed XML: every tag closed in order, quotes balanced.
// Enough to catch a truncated or garbled file without an XML library in the build.
bool WellFormedXml(const std::string& text, std::string* problem) {
  std::vector<std::string> open;
  size_t pos = 0;
  while ((pos = text.find('<', pos)) != std::string::npos) {
    if (text.compare(pos, 4, "<!--") == 0) {
      pos = text.find("-->", pos);
      if (pos == std::string::npos) return *problem = "unclosed comment", false;
      continue;
    }
    if (text.compare(pos, 9, "<![CDATA[") == 0) {
      pos = text.find("]]>", pos);
      if (pos == std::string::npos) return *problem = "unclosed CDATA", false;
      continue;
    }
    size_t end = pos + 1;
    char quote = 0;
    for (; end < text.size(); ++end) {
      if (quote != 0) {
        if (text[end] == quote) quote = 0;
      } else if (text[end] == '"' || text[end] == '\'') {
        quote = text[end];
      } else if (text[end] == '>') {
        break;
      }
    }
    if (end >= text.size()) return *problem = "unterminated tag at " + std::to_string(pos), false;
    const std::string tag = text.substr(pos + 1, end - pos - 1);
    pos = end + 1;
    if (tag.empty()) return *problem = "empty tag", false;
    if (tag[0] == '?' || tag[0] == '!') continue;  // declaration, doctype
    if (tag.back() == '/') continue;               // self-closing
    const std::string name =
        tag.substr(tag[0] == '/' ? 1 : 0, tag.find_first_of(" \t\r\n") - (tag[0] == '/' ? 1 : 0));
    if (tag[0] != '/') {
      open.push_back(name);
    } else if (open.empty() || open.back() != name) {
      return *problem = "</" + name + "> closes <" + (open.empty() ? "" : open.back()) + ">", false;
    } else {
      open.pop_back();
    }
  }
  if (!open.empty()) return *problem = "<" + open.back() + "> never closed", false;
  return true;
}

TEST_CASE("gnuplot draws the compute plot as SVG and PNG", "[unit][cli][plot][gnuplot]") {
  SyntheticSweep sweep;
  absl::StatusOr<PlotData> data = BuildPlotData(sweep.sweep, sweep.Curves(), sweep.Fits(), {});
  REQUIRE(data.ok());
  TempDir dir;

  const std::string svg_path = dir / "sweep.svg";
  absl::StatusOr<std::string> script = RenderPlot(*data, svg_path, /*keep_script=*/true, {});
  REQUIRE(script.ok());
  const std::string svg = ReadFile(svg_path);
  CHECK(svg.size() > 20000);
  CHECK_THAT(svg, Contains("<svg"));
  std::string problem;
  CHECK(WellFormedXml(svg, &problem));
  INFO(problem);
  CHECK_THAT(svg, Contains("compute-optimal frontier"));
  CHECK_THAT(svg, Contains("isoFLOP minima"));
  CHECK(*script == dir / "sweep.gp");
  const std::string kept = ReadFile(*script);
  CHECK_THAT(kept, Contains("set output '" + svg_path + "'"));
  CHECK_THAT(kept, Contains("$runs << EOD"));

  const std::string png_path = dir / "sweep.png";
  REQUIRE(RenderPlot(*data, png_path, /*keep_script=*/false, {}).ok());
  const std::string png = ReadFile(png_path);
  CHECK(png.size() > 10000);
  CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  // Only the two images and the kept script remain: no temporary files.
  std::vector<std::string> names = dir.Names();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"sweep.gp", "sweep.png", "sweep.svg"});
}

TEST_CASE("gnuplot draws loss against tokens with one colour per group",
          "[unit][cli][plot][gnuplot]") {
  SyntheticSweep sweep;
  sweep.sweep.mutable_spec()->mutable_fit()->add_group_by("data.mix");
  PlotDataOptions options;
  options.axis = PlotAxis::kTokens;
  absl::StatusOr<PlotData> data = BuildPlotData(sweep.sweep, sweep.Curves(), {}, options);
  REQUIRE(data.ok());
  const std::string script = GnuplotScript(*data, "out.svg", ImageFormat::kSvg);
  CHECK_THAT(script, Contains("title 'data.mix=books'") && Contains("title 'data.mix=web'"));
  CHECK_THAT(script, !Contains("multiplot"));
  TempDir dir;
  REQUIRE(RenderPlot(*data, dir / "tokens.svg", false, {}).ok());
  CHECK_THAT(ReadFile(dir / "tokens.svg"), Contains("data.mix=books"));
}

TEST_CASE("a missing or failing gnuplot is a clear error and leaves no file behind",
          "[unit][cli][plot][gnuplot]") {
  SyntheticSweep sweep;
  absl::StatusOr<PlotData> data = BuildPlotData(sweep.sweep, sweep.Curves(), {}, {});
  REQUIRE(data.ok());
  TempDir dir;
  GnuplotOptions missing;
  missing.gnuplot = "scalelab-no-such-gnuplot";
  absl::Status status = RenderPlot(*data, dir / "a.svg", false, missing).status();
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(status.message()),
             Contains("gnuplot is not installed") && Contains("scalelab-no-such-gnuplot"));
  CHECK(dir.Names().empty());

  const std::string bad_script = dir / "bad.gp";
  std::ofstream(bad_script) << "set terminal no_such_terminal\n";
  status = RunGnuplot(bad_script, {});
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(status.message()),
             Contains("gnuplot exited with status") && Contains("no_such_terminal"));

  CHECK(ImageFormatOf("plot.PNG").ok());
  CHECK(ImageFormatOf("plot.pdf").status().message() ==
        "--out: expected a file name ending in .svg or .png, got \"plot.pdf\"");
}

TEST_CASE("titles and labels reach gnuplot quoted", "[unit][cli][plot]") {
  PlotData data;
  data.title = "sweep 7 it's: val_loss";
  data.metric = "val_loss";
  data.runs.push_back({1, 1e6, "", {{1, 2}, {10, 1}}});
  const std::string script = GnuplotScript(data, "/tmp/o'k.svg", ImageFormat::kSvg);
  CHECK_THAT(script, Contains("set title 'sweep 7 it''s: val_loss'"));
  CHECK_THAT(script, Contains("set output '/tmp/o''k.svg'"));
  CHECK_THAT(script, Contains("set ylabel 'val_loss (nats/token)'"));
  CHECK_THAT(script, Contains("set termoption noenhanced"));
}

}  // namespace
}  // namespace scalelab::cli
