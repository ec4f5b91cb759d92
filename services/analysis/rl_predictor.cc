#include "services/analysis/rl_predictor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace scalelab::analysis {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A pivot of the correlation matrix below this is collinearity: for two proxies the pivot left
// after elimination is 1 - r^2, so |r| above 1 - 5e-11 counts as one proxy written twice.
constexpr double kMinPivot = 1e-10;

std::string Points(size_t n) { return absl::StrCat(n, n == 1 ? " point" : " points"); }

std::string ProxyCount(size_t p) { return p == 1 ? "one proxy" : absl::StrCat(p, " proxies"); }

// "gen_loss" or "gen_loss + pass@8".
std::string PredictorName(const std::vector<std::string>& proxies) {
  return absl::StrJoin(proxies, " + ");
}

// Inverts the symmetric p x p matrix `a` (row-major) in place by Gauss-Jordan elimination with
// partial pivoting. False when a pivot falls below kMinPivot. Only for the unit-diagonal
// correlation matrices FitLinear builds, whose entries are all in [-1, 1].
bool InvertSmall(std::vector<double>& a, size_t p) {
  std::vector<double> inverse(p * p, 0.0);
  for (size_t i = 0; i < p; ++i) inverse[i * p + i] = 1;
  for (size_t col = 0; col < p; ++col) {
    size_t pivot_row = col;
    for (size_t row = col + 1; row < p; ++row) {
      if (std::abs(a[row * p + col]) > std::abs(a[pivot_row * p + col])) pivot_row = row;
    }
    if (std::abs(a[pivot_row * p + col]) < kMinPivot) return false;
    for (size_t k = 0; k < p; ++k) {
      std::swap(a[col * p + k], a[pivot_row * p + k]);
      std::swap(inverse[col * p + k], inverse[pivot_row * p + k]);
    }
    const double pivot = a[col * p + col];
    for (size_t k = 0; k < p; ++k) {
      a[col * p + k] /= pivot;
      inverse[col * p + k] /= pivot;
    }
    for (size_t row = 0; row < p; ++row) {
      if (row == col) continue;
      const double factor = a[row * p + col];
      if (factor == 0) continue;
      for (size_t k = 0; k < p; ++k) {
        a[row * p + k] -= factor * a[col * p + k];
        inverse[row * p + k] -= factor * inverse[col * p + k];
      }
    }
  }
  a = std::move(inverse);
  return true;
}

// Every subset of [0, count) with 1 to max_size members, smaller subsets first, each in
// lexicographic order.
std::vector<std::vector<size_t>> Subsets(size_t count, int max_size) {
  std::vector<std::vector<size_t>> subsets;
  for (size_t size = 1; size <= static_cast<size_t>(max_size) && size <= count; ++size) {
    std::vector<size_t> members(size);
    std::iota(members.begin(), members.end(), 0);
    while (true) {
      subsets.push_back(members);
      // The next combination: bump the rightmost member that can still move.
      size_t pos = size;
      while (pos > 0 && members[pos - 1] == count - size + pos - 1) --pos;
      if (pos == 0) break;
      ++members[pos - 1];
      for (size_t k = pos; k < size; ++k) members[k] = members[k - 1] + 1;
    }
  }
  return subsets;
}

double RankKey(const PredictorResult& result, RankBy rank_by) {
  switch (rank_by) {
    case RankBy::kLooR2:
      return result.loo_r2.value;
    case RankBy::kAdjustedR2:
      return result.adjusted_r2.value;
    case RankBy::kSpearman:
      return result.spearman.value;
  }
  return kNaN;
}

// The percentile interval of `samples` around `value`; lo and hi stay NaN when no sample is
// finite (every resample failed for this predictor) or there were none.
Estimate Interval(double value, const std::vector<double>& samples, double confidence) {
  Estimate estimate;
  estimate.value = value;
  if (samples.empty()) return estimate;
  absl::StatusOr<Estimate> interval = PercentileEstimate(value, samples, confidence);
  if (interval.ok()) return *interval;
  estimate.samples_skipped = static_cast<int>(samples.size());
  return estimate;
}

}  // namespace

absl::Status CheckProxyTable(const ProxyTable& table) {
  if (table.proxy_names.empty()) {
    return absl::InvalidArgumentError("proxy table: expected at least one proxy column");
  }
  std::set<std::string> seen;
  for (const std::string& name : table.proxy_names) {
    if (name.empty()) return absl::InvalidArgumentError("proxy table: a proxy has no name");
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("proxy table: proxy \"", name, "\" appears twice"));
    }
  }
  for (const ProxyPoint& point : table.points) {
    if (point.proxies.size() != table.proxy_names.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("proxy table: point \"", point.label, "\" has ", point.proxies.size(),
                       " proxy values for ", table.proxy_names.size(), " proxies"));
    }
    if (!std::isfinite(point.target)) {
      return absl::InvalidArgumentError(
          absl::StrCat("proxy table: point \"", point.label, "\": ", table.target_name,
                       ": expected a finite number, got ", point.target));
    }
    for (size_t proxy = 0; proxy < point.proxies.size(); ++proxy) {
      if (!std::isfinite(point.proxies[proxy])) {
        return absl::InvalidArgumentError(
            absl::StrCat("proxy table: point \"", point.label, "\": ", table.proxy_names[proxy],
                         ": expected a finite number, got ", point.proxies[proxy]));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<double> AverageRanks(absl::Span<const double> values) {
  std::vector<size_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return values[a] < values[b]; });
  std::vector<double> ranks(values.size());
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && values[order[end]] == values[order[start]]) ++end;
    // Positions start..end-1 hold one value: each gets the mean of ranks start+1..end.
    const double rank = (static_cast<double>(start + 1) + static_cast<double>(end)) / 2;
    for (size_t pos = start; pos < end; ++pos) ranks[order[pos]] = rank;
    start = end;
  }
  return ranks;
}

absl::StatusOr<double> SpearmanRho(absl::Span<const double> x, absl::Span<const double> y) {
  if (x.size() != y.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spearman: ", x.size(), " x values but ", y.size(), " y values"));
  }
  if (x.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("spearman: expected at least 2 points, got ", x.size()));
  }
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("spearman: point ", i, " is not finite (x ", x[i], ", y ", y[i], ")"));
    }
  }
  const std::vector<double> rx = AverageRanks(x);
  const std::vector<double> ry = AverageRanks(y);
  // Both rank vectors have mean (n + 1) / 2.
  const double mean = (static_cast<double>(x.size()) + 1) / 2;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    sxy += (rx[i] - mean) * (ry[i] - mean);
    sxx += (rx[i] - mean) * (rx[i] - mean);
    syy += (ry[i] - mean) * (ry[i] - mean);
  }
  if (sxx == 0 || syy == 0) {
    return absl::InvalidArgumentError(absl::StrCat("spearman: ", sxx == 0 ? "x" : "y",
                                                   " is constant over the ", x.size(),
                                                   " points: no rank correlation"));
  }
  return sxy / std::sqrt(sxx * syy);
}

absl::StatusOr<LinearFit> FitLinear(absl::Span<const double> y,
                                    absl::Span<const std::vector<double>> columns,
                                    absl::Span<const std::string> names) {
  const size_t n = y.size();
  const size_t p = columns.size();
  if (p == 0) return absl::InvalidArgumentError("linear fit: expected at least one column");
  if (names.size() != p) {
    return absl::InvalidArgumentError(
        absl::StrCat("linear fit: ", names.size(), " names for ", p, " columns"));
  }
  for (size_t j = 0; j < p; ++j) {
    if (columns[j].size() != n) {
      return absl::InvalidArgumentError(absl::StrCat("linear fit: column \"", names[j], "\" has ",
                                                     columns[j].size(), " values for ", n,
                                                     " targets"));
    }
  }
  if (n < p + 3) {
    return absl::InvalidArgumentError(absl::StrCat(Points(n), ": a predictor from ", ProxyCount(p),
                                                   " needs at least ", p + 3, " (its ", p + 1,
                                                   " coefficients + 2)"));
  }
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(y[i])) {
      return absl::InvalidArgumentError(absl::StrCat("linear fit: target of point ", i,
                                                     ": expected a finite number, got ", y[i]));
    }
    for (size_t j = 0; j < p; ++j) {
      if (!std::isfinite(columns[j][i])) {
        return absl::InvalidArgumentError(absl::StrCat("linear fit: \"", names[j], "\" of point ",
                                                       i, ": expected a finite number, got ",
                                                       columns[j][i]));
      }
    }
  }

  const double y_mean = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n);
  double sst = 0;
  for (double value : y) sst += (value - y_mean) * (value - y_mean);
  if (sst == 0) {
    return absl::InvalidArgumentError(absl::StrCat("the target is constant (", y[0], " at all ",
                                                   Points(n), "): nothing to predict"));
  }

  // Columns centred and scaled to unit norm, so that Z'Z is the correlation matrix: its pivots
  // say how collinear the proxies are whatever their units.
  std::vector<std::vector<double>> z(p, std::vector<double>(n));
  std::vector<double> mean(p), norm(p);
  for (size_t j = 0; j < p; ++j) {
    mean[j] = std::accumulate(columns[j].begin(), columns[j].end(), 0.0) / static_cast<double>(n);
    double ss = 0;
    for (double value : columns[j]) ss += (value - mean[j]) * (value - mean[j]);
    norm[j] = std::sqrt(ss);
    if (norm[j] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("proxy \"", names[j], "\" is constant (",
                                                     columns[j][0], " at all ", Points(n), ")"));
    }
    for (size_t i = 0; i < n; ++i) z[j][i] = (columns[j][i] - mean[j]) / norm[j];
  }
  std::vector<double> gram(p * p);
  std::vector<double> zty(p);
  for (size_t a = 0; a < p; ++a) {
    for (size_t b = 0; b < p; ++b) {
      double sum = 0;
      for (size_t i = 0; i < n; ++i) sum += z[a][i] * z[b][i];
      gram[a * p + b] = sum;
    }
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += z[a][i] * (y[i] - y_mean);
    zty[a] = sum;
  }
  std::vector<double> gram_inverse = gram;
  if (!InvertSmall(gram_inverse, p)) {
    return absl::InvalidArgumentError(
        absl::StrCat("proxies ", PredictorName({names.begin(), names.end()}),
                     " are collinear over the ", Points(n), ": their slopes are not determined"));
  }
  std::vector<double> beta(p, 0.0);  // slopes on the scaled columns
  for (size_t a = 0; a < p; ++a) {
    for (size_t b = 0; b < p; ++b) beta[a] += gram_inverse[a * p + b] * zty[b];
  }

  LinearFit fit;
  fit.n = static_cast<int>(n);
  fit.coefficients.assign(p + 1, 0.0);
  fit.coefficients[0] = y_mean;
  for (size_t j = 0; j < p; ++j) {
    fit.coefficients[j + 1] = beta[j] / norm[j];
    fit.coefficients[0] -= fit.coefficients[j + 1] * mean[j];
  }
  fit.fitted.resize(n);
  double sse = 0, press = 0;
  bool loo_defined = true;
  for (size_t i = 0; i < n; ++i) {
    double fitted = y_mean;
    // Leverage of point i in the design [1, X]: 1/n from the intercept plus z_i' (Z'Z)^-1 z_i.
    double leverage = 1.0 / static_cast<double>(n);
    for (size_t a = 0; a < p; ++a) {
      fitted += beta[a] * z[a][i];
      for (size_t b = 0; b < p; ++b) leverage += z[a][i] * gram_inverse[a * p + b] * z[b][i];
    }
    fit.fitted[i] = fitted;
    const double residual = y[i] - fitted;
    sse += residual * residual;
    if (1 - leverage < 1e-12) {
      loo_defined = false;
    } else {
      const double loo_residual = residual / (1 - leverage);
      press += loo_residual * loo_residual;
    }
  }
  fit.r2 = 1 - sse / sst;
  fit.adjusted_r2 = 1 - (1 - fit.r2) * static_cast<double>(n - 1) / static_cast<double>(n - p - 1);
  fit.loo_r2 = loo_defined ? 1 - press / sst : kNaN;
  absl::StatusOr<double> rho = SpearmanRho(fit.fitted, y);
  fit.spearman = rho.ok() ? *rho : kNaN;
  return fit;
}

absl::string_view RankByName(RankBy rank_by) {
  switch (rank_by) {
    case RankBy::kLooR2:
      return "loo_r2";
    case RankBy::kAdjustedR2:
      return "adj_r2";
    case RankBy::kSpearman:
      return "spearman";
  }
  return "?";
}

absl::StatusOr<RankBy> ParseRankBy(absl::string_view text) {
  for (RankBy rank_by : {RankBy::kLooR2, RankBy::kAdjustedR2, RankBy::kSpearman}) {
    if (text == RankByName(rank_by)) return rank_by;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "rank_by: expected loo_r2, adj_r2 or spearman, got \"", text.substr(0, 80), "\""));
}

absl::Status PredictorOptions::Validate() const {
  if (max_proxies < 1 || max_proxies > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_proxies: expected 1, 2 or 3, got ", max_proxies));
  }
  if (bootstrap < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap: expected 0 (no intervals) or more resamples, got ", bootstrap));
  }
  if (!(confidence > 0 && confidence < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("confidence: expected a number in (0, 1), got ", confidence));
  }
  return absl::OkStatus();
}

absl::StatusOr<PredictorReport> RankPredictors(const ProxyTable& table,
                                               const PredictorOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  if (absl::Status status = CheckProxyTable(table); !status.ok()) return status;
  const size_t n = table.points.size();
  if (n < 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        Points(n), ": a predictor from one proxy needs at least 4 (its 2 coefficients + 2)"));
  }
  std::vector<double> target(n);
  std::vector<std::vector<double>> columns(table.proxy_names.size(), std::vector<double>(n));
  for (size_t i = 0; i < n; ++i) {
    target[i] = table.points[i].target;
    for (size_t j = 0; j < columns.size(); ++j) columns[j][i] = table.points[i].proxies[j];
  }
  if (std::all_of(target.begin(), target.end(), [&](double v) { return v == target[0]; })) {
    return absl::InvalidArgumentError(absl::StrCat(table.target_name, " is constant (", target[0],
                                                   " at all ", Points(n), "): nothing to predict"));
  }

  PredictorReport report;
  report.target_name = table.target_name;
  report.n_points = static_cast<int>(n);
  report.rank_by = options.rank_by;
  report.bootstrap = options.bootstrap;
  report.confidence = options.confidence;

  std::vector<size_t> usable;  // proxy indices
  for (size_t j = 0; j < columns.size(); ++j) {
    const std::vector<double>& column = columns[j];
    if (std::all_of(column.begin(), column.end(), [&](double v) { return v == column[0]; })) {
      report.notes.push_back(absl::StrCat("proxy \"", table.proxy_names[j], "\" is constant (",
                                          column[0], " at all ", Points(n), "): left out"));
    } else {
      usable.push_back(j);
    }
  }

  // The predictors that fit on every point; each keeps its proxy indices for the resamples.
  std::vector<std::vector<size_t>> members;
  for (const std::vector<size_t>& subset : Subsets(usable.size(), options.max_proxies)) {
    std::vector<size_t> proxies;
    std::vector<std::vector<double>> subset_columns;
    PredictorResult result;
    for (size_t k : subset) {
      proxies.push_back(usable[k]);
      subset_columns.push_back(columns[usable[k]]);
      result.proxies.push_back(table.proxy_names[usable[k]]);
    }
    absl::StatusOr<LinearFit> fit = FitLinear(target, subset_columns, result.proxies);
    if (!fit.ok()) {
      report.notes.push_back(absl::StrCat("predictor ", PredictorName(result.proxies), ": ",
                                          fit.status().message(), ": left out"));
      continue;
    }
    result.fit = *std::move(fit);
    report.predictors.push_back(std::move(result));
    members.push_back(std::move(proxies));
  }
  if (report.predictors.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no predictor of ", table.target_name,
                     " could be fitted: ", absl::StrJoin(report.notes, "; ")));
  }

  // Bootstrap: the same resamples of the SFT runs for every predictor, so that their intervals
  // are comparable. A predictor that cannot be fitted on a resample records NaN there.
  const size_t count = report.predictors.size();
  std::vector<std::vector<double>> r2(count), adjusted(count), loo(count), rho(count);
  std::vector<double> resample_target(n);
  for (int sample = 0; sample < options.bootstrap; ++sample) {
    const std::vector<size_t> indices = ResampleIndices(n, options.seed, sample);
    for (size_t i = 0; i < n; ++i) resample_target[i] = target[indices[i]];
    const size_t distinct = std::set<size_t>(indices.begin(), indices.end()).size();
    for (size_t pred = 0; pred < count; ++pred) {
      // Copies of one run are not more points: a resample needs as many distinct runs as the
      // predictor needs points, or it fits (and LOO-predicts) a few runs exactly.
      if (distinct < members[pred].size() + 3) {
        for (auto* samples : {&r2[pred], &adjusted[pred], &loo[pred], &rho[pred]}) {
          samples->push_back(kNaN);
        }
        continue;
      }
      std::vector<std::vector<double>> resample_columns;
      for (size_t proxy : members[pred]) {
        std::vector<double> column(n);
        for (size_t i = 0; i < n; ++i) column[i] = columns[proxy][indices[i]];
        resample_columns.push_back(std::move(column));
      }
      absl::StatusOr<LinearFit> fit =
          FitLinear(resample_target, resample_columns, report.predictors[pred].proxies);
      r2[pred].push_back(fit.ok() ? fit->r2 : kNaN);
      adjusted[pred].push_back(fit.ok() ? fit->adjusted_r2 : kNaN);
      loo[pred].push_back(fit.ok() ? fit->loo_r2 : kNaN);
      rho[pred].push_back(fit.ok() ? fit->spearman : kNaN);
    }
  }
  for (size_t pred = 0; pred < count; ++pred) {
    PredictorResult& result = report.predictors[pred];
    result.r2 = Interval(result.fit.r2, r2[pred], options.confidence);
    result.adjusted_r2 = Interval(result.fit.adjusted_r2, adjusted[pred], options.confidence);
    result.loo_r2 = Interval(result.fit.loo_r2, loo[pred], options.confidence);
    result.spearman = Interval(result.fit.spearman, rho[pred], options.confidence);
  }

  // Stable: equal keys keep the order built above (fewer proxies first, then table order).
  std::stable_sort(report.predictors.begin(), report.predictors.end(),
                   [&](const PredictorResult& a, const PredictorResult& b) {
                     const double ka = RankKey(a, options.rank_by);
                     const double kb = RankKey(b, options.rank_by);
                     if (std::isnan(ka) || std::isnan(kb)) return !std::isnan(ka) && std::isnan(kb);
                     return ka > kb;
                   });
  return report;
}

}  // namespace scalelab::analysis
