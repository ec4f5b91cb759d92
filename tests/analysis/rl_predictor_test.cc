#include "services/analysis/rl_predictor.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace scalelab::analysis {
namespace {

// Six SFT runs: post-RL pass@1 (target), post-SFT pass@1 (sft) and the generalization loss
// (gen). Reference values by exact rational arithmetic in python3 (fractions.Fraction): OLS by
// the normal equations, LOO R² by refitting without each point in turn (not by the hat-matrix
// shortcut the code uses), Spearman as Pearson's r of average ranks.
const std::vector<double> kTarget = {0.30, 0.42, 0.38, 0.55, 0.61, 0.52};
const std::vector<double> kSft = {0.20, 0.35, 0.30, 0.40, 0.50, 0.45};
const std::vector<double> kGen = {1.9, 1.6, 1.8, 1.3, 1.2, 1.5};

ProxyTable StudyTable() {
  ProxyTable table;
  table.target_name = "rl_pass@1";
  table.proxy_names = {"sft_pass@1", "gen_loss"};
  for (size_t i = 0; i < kTarget.size(); ++i) {
    table.points.push_back({std::to_string(i + 1), kTarget[i], {kSft[i], kGen[i]}});
  }
  return table;
}

TEST_CASE("Average ranks give tied values the mean of the ranks they span", "[analysis]") {
  CHECK(AverageRanks(std::vector<double>{3, 1, 3, 2}) == std::vector<double>{3.5, 1, 3.5, 2});
  CHECK(AverageRanks(std::vector<double>{5, 5, 5}) == std::vector<double>{2, 2, 2});
  CHECK(AverageRanks(std::vector<double>{0.1, -2, 7}) == std::vector<double>{2, 1, 3});
}

TEST_CASE("Spearman's rho is 1 for monotone data and exact under ties", "[analysis]") {
  CHECK(*SpearmanRho(std::vector<double>{1, 2, 3, 4}, std::vector<double>{1, 8, 27, 64}) == 1.0);
  CHECK(*SpearmanRho(std::vector<double>{1, 2, 3, 4}, std::vector<double>{4, 3, 2, 1}) == -1.0);
  // Ranks {1, 2.5, 2.5, 4, 5} and {1, 2, 3.5, 3.5, 5}: sum of rank products about the mean 3 is
  // 8.75, sums of squares 9.5 each, rho = 8.75 / 9.5 = 0.9210526 (the rank-difference formula
  // 1 - 6 sum d^2 / (n (n^2 - 1)) would give 0.925, wrong under ties).
  CHECK(*SpearmanRho(std::vector<double>{1, 2, 2, 3, 4}, std::vector<double>{10, 20, 30, 30, 50}) ==
        Approx(8.75 / 9.5).epsilon(1e-12));
  // python3: 0.9428571428571428 (= 1 - 6 x 2 / 210, no ties).
  CHECK(*SpearmanRho(kSft, kTarget) == Approx(0.9428571428571428).epsilon(1e-12));
  CHECK(*SpearmanRho(kGen, kTarget) == Approx(-1.0).epsilon(1e-12));
}

TEST_CASE("Spearman's rho refuses constant, mismatched, short and non-finite input", "[analysis]") {
  auto constant = SpearmanRho(std::vector<double>{2, 2, 2}, std::vector<double>{1, 2, 3});
  REQUIRE_FALSE(constant.ok());
  CHECK_THAT(std::string(constant.status().message()), Catch::Contains("x is constant"));
  CHECK_FALSE(SpearmanRho(std::vector<double>{1, 2}, std::vector<double>{1, 2, 3}).ok());
  CHECK_FALSE(SpearmanRho(std::vector<double>{1}, std::vector<double>{1}).ok());
  auto nan = SpearmanRho(std::vector<double>{1, NAN, 3}, std::vector<double>{1, 2, 3});
  REQUIRE_FALSE(nan.ok());
  CHECK_THAT(std::string(nan.status().message()), Catch::Contains("point 1 is not finite"));
}

TEST_CASE("A perfectly linear proxy gives R², LOO R² and rho of 1", "[analysis]") {
  const std::vector<double> x = {0.1, 0.4, 0.2, 0.8, 0.5};
  std::vector<double> y;
  for (double value : x) y.push_back(0.05 + 0.7 * value);
  auto fit = FitLinear(y, {x}, {"pass@8"});
  REQUIRE(fit.ok());
  CHECK(fit->coefficients[0] == Approx(0.05).epsilon(1e-12));
  CHECK(fit->coefficients[1] == Approx(0.7).epsilon(1e-12));
  CHECK(fit->r2 == Approx(1.0).epsilon(1e-12));
  CHECK(fit->adjusted_r2 == Approx(1.0).epsilon(1e-12));
  CHECK(fit->loo_r2 == Approx(1.0).epsilon(1e-12));
  CHECK(fit->spearman == 1.0);
}

TEST_CASE("One-proxy and two-proxy fits match the exact reference values", "[analysis]") {
  auto sft = FitLinear(kTarget, {kSft}, {"sft_pass@1"});
  REQUIRE(sft.ok());
  // python3 (Fraction): beta = (0.082, 1.04), R² 0.931496062992126, adjusted 0.9143700787401575,
  // LOO 0.8792073437240201, rho 0.9428571428571428.
  CHECK(sft->coefficients[0] == Approx(0.082).epsilon(1e-10));
  CHECK(sft->coefficients[1] == Approx(1.04).epsilon(1e-10));
  CHECK(sft->r2 == Approx(0.931496062992126).epsilon(1e-10));
  CHECK(sft->adjusted_r2 == Approx(0.9143700787401575).epsilon(1e-10));
  CHECK(sft->loo_r2 == Approx(0.8792073437240201).epsilon(1e-10));
  CHECK(sft->spearman == Approx(0.9428571428571428).epsilon(1e-10));

  auto gen = FitLinear(kTarget, {kGen}, {"gen_loss"});
  REQUIRE(gen.ok());
  // beta = (1.1081333333333334, -0.416): lower generalization loss, higher RL outcome.
  CHECK(gen->coefficients[0] == Approx(1.1081333333333334).epsilon(1e-10));
  CHECK(gen->coefficients[1] == Approx(-0.416).epsilon(1e-10));
  CHECK(gen->r2 == Approx(0.9581102362204724).epsilon(1e-10));
  CHECK(gen->loo_r2 == Approx(0.9189191774514368).epsilon(1e-10));
  CHECK(gen->spearman == Approx(1.0).epsilon(1e-12));

  auto both = FitLinear(kTarget, {kSft, kGen}, {"sft_pass@1", "gen_loss"});
  REQUIRE(both.ok());
  // beta = (0.68, 0.46301369863013697, -0.2493150684931507), R² 0.9889170531765721, adjusted
  // 0.9815284219609535, LOO 0.9706773967628191.
  CHECK(both->coefficients[0] == Approx(0.68).epsilon(1e-10));
  CHECK(both->coefficients[1] == Approx(0.46301369863013697).epsilon(1e-10));
  CHECK(both->coefficients[2] == Approx(-0.2493150684931507).epsilon(1e-10));
  CHECK(both->r2 == Approx(0.9889170531765721).epsilon(1e-10));
  CHECK(both->adjusted_r2 == Approx(0.9815284219609535).epsilon(1e-10));
  CHECK(both->loo_r2 == Approx(0.9706773967628191).epsilon(1e-10));
}

TEST_CASE("A linear fit refuses too few points, constant and collinear proxies and NaN",
          "[analysis]") {
  const std::vector<double> y = {1, 2, 3, 5};
  auto few = FitLinear(y, {{1, 2, 3, 4}, {4, 1, 3, 2}}, {"a", "b"});
  REQUIRE_FALSE(few.ok());
  CHECK(std::string(few.status().message()) ==
        "4 points: a predictor from 2 proxies needs at least 5 (its 3 coefficients + 2)");
  auto constant = FitLinear(y, {{0.5, 0.5, 0.5, 0.5}}, {"pass@8"});
  REQUIRE_FALSE(constant.ok());
  CHECK(std::string(constant.status().message()) ==
        "proxy \"pass@8\" is constant (0.5 at all 4 points)");
  auto collinear =
      FitLinear({1, 2, 3, 5, 4}, {{1, 2, 3, 4, 5}, {2, 4, 6, 8, 10}}, {"sft_pass@1", "copy"});
  REQUIRE_FALSE(collinear.ok());
  CHECK_THAT(std::string(collinear.status().message()),
             Catch::Contains("proxies sft_pass@1 + copy are collinear"));
  auto nan = FitLinear(y, {{1, NAN, 3, 4}}, {"gen_loss"});
  REQUIRE_FALSE(nan.ok());
  CHECK_THAT(std::string(nan.status().message()),
             Catch::Contains("\"gen_loss\" of point 1: expected a finite number, got nan"));
  auto flat = FitLinear({2, 2, 2, 2}, {{1, 2, 3, 4}}, {"x"});
  REQUIRE_FALSE(flat.ok());
  CHECK_THAT(std::string(flat.status().message()), Catch::Contains("the target is constant"));
}

TEST_CASE("Predictors are ranked by LOO R² with bootstrap intervals around the full fit",
          "[analysis]") {
  PredictorOptions options;
  options.bootstrap = 200;
  auto report = RankPredictors(StudyTable(), options);
  REQUIRE(report.ok());
  CHECK(report->n_points == 6);
  CHECK(report->notes.empty());
  REQUIRE(report->predictors.size() == 3);
  // LOO R²: pair 0.9707 > gen_loss 0.9189 > sft_pass@1 0.8792.
  CHECK(report->predictors[0].proxies == std::vector<std::string>{"sft_pass@1", "gen_loss"});
  CHECK(report->predictors[1].proxies == std::vector<std::string>{"gen_loss"});
  CHECK(report->predictors[2].proxies == std::vector<std::string>{"sft_pass@1"});
  CHECK(report->predictors[1].loo_r2.value == Approx(0.9189191774514368).epsilon(1e-10));
  for (const PredictorResult& result : report->predictors) {
    for (const Estimate* estimate :
         {&result.r2, &result.adjusted_r2, &result.loo_r2, &result.spearman}) {
      CHECK(estimate->lo <= estimate->hi);
      CHECK(estimate->samples_used + estimate->samples_skipped == 200);
    }
    // A resample counts for a predictor only with p + 3 distinct runs of the six: for a pair
    // that is 5 or 6 distinct, 24.7% of resamples ((6 x 15 x 120 + 720) / 6^6); for one proxy
    // 4 or more, 74.8% (python3, counting all 6^6 draws).
    const int used = result.loo_r2.samples_used;
    if (result.proxies.size() == 2) {
      CHECK(used > 0.15 * 200);
      CHECK(used < 0.35 * 200);
    } else {
      CHECK(used > 0.6 * 200);
      CHECK(used < 0.9 * 200);
    }
    CHECK(result.r2.lo <= result.r2.value);
    CHECK(result.r2.hi <= 1.0);
  }
  // The same seed, the same intervals.
  auto again = RankPredictors(StudyTable(), options);
  REQUIRE(again.ok());
  CHECK(again->predictors[0].loo_r2.lo == report->predictors[0].loo_r2.lo);
  CHECK(again->predictors[0].loo_r2.hi == report->predictors[0].loo_r2.hi);
}

TEST_CASE("Ranking by adjusted R² or by Spearman is available on request", "[analysis]") {
  PredictorOptions options;
  options.bootstrap = 0;
  options.rank_by = RankBy::kSpearman;
  auto report = RankPredictors(StudyTable(), options);
  REQUIRE(report.ok());
  // Rho 1 for the pair and for gen_loss (tied: fewer proxies first), 0.943 for sft_pass@1.
  CHECK(report->predictors[0].proxies == std::vector<std::string>{"gen_loss"});
  CHECK(report->predictors[2].proxies == std::vector<std::string>{"sft_pass@1"});
  CHECK(std::isnan(report->predictors[0].spearman.lo));
  CHECK(*ParseRankBy("adj_r2") == RankBy::kAdjustedR2);
  CHECK_FALSE(ParseRankBy("r2").ok());
}

TEST_CASE("A constant proxy is left out with a note, and too few points is an error",
          "[analysis]") {
  ProxyTable table = StudyTable();
  table.proxy_names.push_back("pass@8");
  for (ProxyPoint& point : table.points) point.proxies.push_back(1.0);
  PredictorOptions options;
  options.bootstrap = 0;
  auto report = RankPredictors(table, options);
  REQUIRE(report.ok());
  REQUIRE(report->notes.size() == 1);
  CHECK(report->notes[0] == "proxy \"pass@8\" is constant (1 at all 6 points): left out");
  CHECK(report->predictors.size() == 3);

  // Four points: the one-proxy predictors fit, the pair needs five.
  table = StudyTable();
  table.points.resize(4);
  report = RankPredictors(table, options);
  REQUIRE(report.ok());
  CHECK(report->predictors.size() == 2);
  REQUIRE(report->notes.size() == 1);
  CHECK_THAT(report->notes[0], Catch::Contains("predictor sft_pass@1 + gen_loss: 4 points"));

  table.points.resize(3);
  auto few = RankPredictors(table, options);
  REQUIRE_FALSE(few.ok());
  CHECK(std::string(few.status().message()) ==
        "3 points: a predictor from one proxy needs at least 4 (its 2 coefficients + 2)");

  table = StudyTable();
  table.points[2].proxies[1] = NAN;
  auto nan = RankPredictors(table, options);
  REQUIRE_FALSE(nan.ok());
  CHECK(std::string(nan.status().message()) ==
        "proxy table: point \"3\": gen_loss: expected a finite number, got nan");

  table = StudyTable();
  for (ProxyPoint& point : table.points) point.target = 0.25;
  auto flat = RankPredictors(table, options);
  REQUIRE_FALSE(flat.ok());
  CHECK(std::string(flat.status().message()) ==
        "rl_pass@1 is constant (0.25 at all 6 points): nothing to predict");
}

TEST_CASE("A proxy table reads from CSV with errors naming the line and column", "[analysis]") {
  auto table = ParseProxyTableCsv(
      "sft_run,target,gen_loss,\"pass@8\"\n12,0.5,1.25,0.75\n\n13 , 0.6 ,1.0,0.8\r\n", "p.csv");
  REQUIRE(table.ok());
  CHECK(table->proxy_names == std::vector<std::string>{"gen_loss", "pass@8"});
  REQUIRE(table->points.size() == 2);
  CHECK(table->points[1].label == "13");
  CHECK(table->points[1].target == 0.6);
  CHECK(table->points[1].proxies == std::vector<double>{1.0, 0.8});

  auto bad = ParseProxyTableCsv("sft_run,target,gen_loss\n1,0.5,abc\n", "p.csv");
  REQUIRE_FALSE(bad.ok());
  CHECK(std::string(bad.status().message()) ==
        "p.csv:2: column \"gen_loss\": expected a finite number, got \"abc\"");
  auto nan = ParseProxyTableCsv("sft_run,target,gen_loss\n1,nan,1\n", "p.csv");
  REQUIRE_FALSE(nan.ok());
  CHECK_THAT(std::string(nan.status().message()), Catch::Contains("column \"target\""));
  auto no_target = ParseProxyTableCsv("sft_run,gen_loss\n1,1\n", "p.csv");
  REQUIRE_FALSE(no_target.ok());
  CHECK_THAT(std::string(no_target.status().message()), Catch::Contains("no \"target\" column"));
  CHECK_FALSE(ParseProxyTableCsv("sft_run,target\n1,1\n", "p.csv").ok());
  CHECK_FALSE(ParseProxyTableCsv("sft_run,target,a,a\n1,1,1,1\n", "p.csv").ok());
  auto short_row = ParseProxyTableCsv("sft_run,target,a\n1,1\n", "p.csv");
  REQUIRE_FALSE(short_row.ok());
  CHECK(std::string(short_row.status().message()) ==
        "p.csv:2: expected 3 fields (as the header), got 2");
  CHECK(ReadProxyTableCsv("/nonexistent/points.csv").status().code() ==
        absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace scalelab::analysis
