// Which cheap measure taken after SFT predicts the outcome of RL (issue 8, item 6).
//
// A study trains many SFT variants and runs RL (GRPO) on each. For every SFT run there is one
// target (post-RL pass@1) and a few proxies measured before RL (post-SFT pass@1, the
// generalization loss, pass@k at a large k). RankPredictors fits an ordinary least-squares line
// of the target on each proxy alone and on each pair, and ranks those predictors by how well
// they would predict a run they were not fitted on.
//
// Why leave-one-out R² ranks by default: in-sample R² never falls when a proxy is added, so with
// a dozen runs a pair always beats both of its members in-sample, whether or not the second
// proxy carries anything. LOO R² (1 - PRESS / total sum of squares, PRESS from the hat matrix's
// diagonal, exact for OLS) pays for the extra coefficient. Adjusted R² and Spearman's rho of
// predicted against actual can rank instead (PredictorOptions::rank_by).
//
// Intervals are percentile bootstrap intervals over SFT runs (bootstrap.h's ResampleIndices and
// PercentileEstimate): each resample draws as many runs as there are, with replacement, and every
// predictor is refitted on the same resample. A resample on which a predictor cannot be fitted
// (a proxy constant within it, fewer distinct runs than the p + 3 points a predictor from p
// proxies needs) counts as skipped for that predictor (Estimate::samples_skipped). With a
// duplicated run in a resample, leaving one copy out keeps its twin, so bootstrap LOO R² leans
// optimistic; the point estimate does not.
//
// Plain arithmetic over absl: small normal equations solved in closed form (no Ceres).
#ifndef SCALELAB_SERVICES_ANALYSIS_RL_PREDICTOR_H_
#define SCALELAB_SERVICES_ANALYSIS_RL_PREDICTOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/analysis/bootstrap.h"

namespace scalelab::analysis {

// One SFT run: the value predicted and its proxies (in ProxyTable::proxy_names order).
struct ProxyPoint {
  std::string label;  // the SFT run ("12"), or the CSV's sft_run field
  double target = 0;
  std::vector<double> proxies;
};

struct ProxyTable {
  std::string target_name = "target";  // e.g. "rl_pass@1"
  std::vector<std::string> proxy_names;
  std::vector<ProxyPoint> points;
};

// InvalidArgument for no proxy, an empty or repeated proxy name, a point with another number of
// proxies than names, or a value that is not finite (naming the point's label and the column).
absl::Status CheckProxyTable(const ProxyTable& table);

// 1-based ranks of `values`, ties given the mean of the ranks they span: {3, 1, 3, 2} -> {3.5,
// 1, 3.5, 2}. Values must be finite (NaN has no order).
std::vector<double> AverageRanks(absl::Span<const double> values);

// Spearman's rho: Pearson's correlation of the average ranks (so exact under ties, unlike
// 1 - 6 sum d^2 / (n (n^2 - 1))). InvalidArgument when the sizes differ, there are fewer than 2
// values, a value is not finite, or either side is constant (rho undefined).
absl::StatusOr<double> SpearmanRho(absl::Span<const double> x, absl::Span<const double> y);

// An OLS fit y = b0 + sum_j b_j x_j over n points.
struct LinearFit {
  std::vector<double> coefficients;  // b0 (the intercept), then one slope per column
  int n = 0;
  double r2 = 0;           // in-sample: 1 - SSE / SST
  double adjusted_r2 = 0;  // 1 - (1 - r2) (n - 1) / (n - p - 1), p = columns
  // 1 - PRESS / SST, PRESS = sum_i (e_i / (1 - h_ii))^2: each point predicted by the line fitted
  // without it. May be negative (worse than the mean). NaN when a point has leverage 1 (the fit
  // without it is undetermined).
  double loo_r2 = 0;
  double spearman = 0;  // Spearman's rho of fitted against y; NaN when the fitted values are equal
  std::vector<double> fitted;
};

// Fits y on `columns` (each of y's size; names[j] names column j in errors). InvalidArgument
// when a value is not finite, sizes differ, n < p + 3 (the p + 1 coefficients and 2 degrees of
// freedom left for the residual and for the leave-one-out fits), y is constant, a column is
// constant, or the columns are collinear (the normal equations are singular).
absl::StatusOr<LinearFit> FitLinear(absl::Span<const double> y,
                                    absl::Span<const std::vector<double>> columns,
                                    absl::Span<const std::string> names);

enum class RankBy { kLooR2, kAdjustedR2, kSpearman };
// "loo_r2", "adj_r2", "spearman"; and back (InvalidArgument naming the text otherwise).
absl::string_view RankByName(RankBy rank_by);
absl::StatusOr<RankBy> ParseRankBy(absl::string_view text);

struct PredictorOptions {
  // Predictors from every subset of 1 to max_proxies proxies (2: each alone and each pair).
  // In [1, 3].
  int max_proxies = 2;
  RankBy rank_by = RankBy::kLooR2;
  // Bootstrap resamples of the SFT runs; 0 = point estimates only (intervals NaN).
  int bootstrap = 1000;
  double confidence = 0.95;  // interval level, in (0, 1)
  uint64_t seed = 1;         // of the resamples: the same table, the same intervals

  // InvalidArgument naming the field otherwise.
  absl::Status Validate() const;
};

struct PredictorResult {
  std::vector<std::string> proxies;  // the proxies it is fitted on, in the table's order
  LinearFit fit;                     // on every point
  // value from `fit`, lo/hi the bootstrap percentiles (NaN without bootstrap).
  Estimate r2;
  Estimate adjusted_r2;
  Estimate loo_r2;
  Estimate spearman;
};

struct PredictorReport {
  std::string target_name;
  int n_points = 0;
  RankBy rank_by = RankBy::kLooR2;
  int bootstrap = 0;
  double confidence = 0;
  // Best first by rank_by's value (NaN last; ties: fewer proxies, then the table's order).
  std::vector<PredictorResult> predictors;
  // Proxies and predictors left out and why ("proxy \"pass@8\" is constant (1 at all 9
  // points): left out").
  std::vector<std::string> notes;
};

// Fits and ranks every predictor. A constant proxy, or a predictor with too few points for its
// coefficients or collinear proxies, is left out with a note. InvalidArgument for bad options,
// a bad table (CheckProxyTable), a constant target, or when no predictor can be fitted (the
// message says why, e.g. "3 points: a predictor from one proxy needs at least 4").
absl::StatusOr<PredictorReport> RankPredictors(const ProxyTable& table,
                                               const PredictorOptions& options);

// A proxy table from CSV text with a header row: a column "sft_run" (any text, the label), a
// column "target" (the value predicted), and one column per proxy, named by its header
// (case-sensitive, surrounding blanks dropped). Fields may be quoted as in csv_points.h. Errors
// name `source`, the line and the column: "<source>:<line>: column \"gen_loss\": expected a
// finite number, got \"abc\"". Empty lines are skipped.
absl::StatusOr<ProxyTable> ParseProxyTableCsv(absl::string_view text, absl::string_view source);
// The file at `path`, parsed as above. NotFound when it cannot be opened.
absl::StatusOr<ProxyTable> ReadProxyTableCsv(const std::string& path);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_RL_PREDICTOR_H_
