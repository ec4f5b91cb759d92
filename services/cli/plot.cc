#include "services/cli/plot.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/cli/fit_format.h"

namespace scalelab::cli {
namespace {

constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

double Get(const std::map<std::string, double>& parameters, const char* name) {
  auto found = parameters.find(name);
  return found == parameters.end() ? kNoValue : found->second;
}

bool Positive(double value) { return std::isfinite(value) && value > 0; }

// The group of a run under the sweep's fit.group_by keys: "key=value ..." in key order.
std::string GroupOf(const v1::Sweep& sweep, const v1::Run& run) {
  std::vector<std::string> keys(sweep.spec().fit().group_by().begin(),
                                sweep.spec().fit().group_by().end());
  std::sort(keys.begin(), keys.end());
  std::vector<std::string> parts;
  for (const std::string& key : keys) {
    auto value = run.overrides().find(key);
    parts.push_back(absl::StrCat(key, "=", value == run.overrides().end() ? "?" : value->second));
  }
  return absl::StrJoin(parts, " ");
}

std::string FitLabel(const v1::Fit& fit) {
  const std::string group =
      fit.group().empty() ? "" : absl::StrCat(" (", GroupText(fit.group()), ")");
  if (fit.law() == "compute") return absl::StrCat("compute-law fit", group, ": E + k C^-gamma");
  return absl::StrCat("chinchilla fit", group, ": L(N_opt(C), D_opt(C))");
}

// Adds the law lines, frontier and allocations of every fit over [x_lo, x_hi].
void AddFits(const v1::GetFitsResponse& fits, double x_lo, double x_hi,
             const PlotDataOptions& options, PlotData* data) {
  for (const v1::Fit& fit : fits.fits()) {
    if (fit.parameters().empty()) continue;  // a group with only a message
    const std::map<std::string, double> parameters(fit.parameters().begin(),
                                                   fit.parameters().end());
    LawLine law{FitLabel(fit), {}};
    LawLine frontier{absl::StrCat("N_opt(C) of the chinchilla fit",
                                  fit.group().empty() ? "" : " (" + GroupText(fit.group()) + ")"),
                     {}};
    for (double flops : LogSpace(x_lo, x_hi, options.law_points)) {
      if (fit.law() == "compute") {
        const double loss = ComputeLawLoss(parameters, flops);
        if (Positive(loss)) law.points.push_back({flops, loss});
      } else {
        const ComputeOptimal optimum = ChinchillaOptimum(parameters, flops);
        if (Positive(optimum.loss)) law.points.push_back({flops, optimum.loss});
        if (Positive(optimum.n_params)) frontier.points.push_back({flops, optimum.n_params});
      }
    }
    if (!law.points.empty()) data->laws.push_back(std::move(law));
    if (!frontier.points.empty()) data->frontiers.push_back(std::move(frontier));
    for (const v1::Allocation& allocation : fit.allocations()) {
      // Budgets far outside the drawn range would squash the panel into a corner.
      if (!(allocation.flops() >= x_lo / options.extrapolate_factor &&
            allocation.flops() <= x_hi) ||
          !Positive(allocation.n_params().value())) {
        continue;
      }
      data->allocations.push_back({allocation.flops(), allocation.n_params().value(),
                                   allocation.n_params().lo(), allocation.n_params().hi()});
    }
  }
}

}  // namespace

std::vector<double> LogSpace(double lo, double hi, int count) {
  std::vector<double> values;
  if (!Positive(lo) || !Positive(hi) || count < 1) return values;
  if (count == 1 || lo == hi) return {lo};
  const double step = (std::log(hi) - std::log(lo)) / (count - 1);
  for (int idx = 0; idx < count; ++idx) values.push_back(std::exp(std::log(lo) + idx * step));
  values.front() = lo;  // exact ends, so a level at the range's edge is inside it
  values.back() = hi;
  return values;
}

std::vector<double> DecadesBetween(double lo, double hi) {
  std::vector<double> decades;
  if (!Positive(lo) || !Positive(hi) || hi < lo) return decades;
  // A relative tolerance so that 1e19 computed as 6 * N * D still counts as 1e19.
  for (int exponent = static_cast<int>(std::ceil(std::log10(lo) - 1e-9));
       exponent <= static_cast<int>(std::floor(std::log10(hi) + 1e-9)); ++exponent) {
    decades.push_back(std::pow(10.0, exponent));
  }
  return decades;
}

double InterpolateLogLog(const std::vector<XY>& curve, double x) {
  if (curve.empty() || !(x >= curve.front().x && x <= curve.back().x)) return kNoValue;
  auto upper = std::lower_bound(curve.begin(), curve.end(), x,
                                [](const XY& point, double value) { return point.x < value; });
  if (upper->x == x) return upper->y;
  auto lower = upper - 1;  // x > curve.front().x here, so upper is not the first point
  const double t = (std::log(x) - std::log(lower->x)) / (std::log(upper->x) - std::log(lower->x));
  return std::exp(std::log(lower->y) + t * (std::log(upper->y) - std::log(lower->y)));
}

std::vector<IsoFlopMinimum> IsoFlopMinima(const std::vector<RunSeries>& runs, int levels) {
  // Where at least two curves overlap: scan the curves' starts (+1) and ends (-1) in x order,
  // starts first at a tie so that curves touching at one point overlap there.
  std::vector<std::pair<double, int>> events;
  for (const RunSeries& run : runs) {
    if (run.points.empty()) continue;
    events.emplace_back(run.points.front().x, +1);
    events.emplace_back(run.points.back().x, -1);
  }
  std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  });
  double lo = kNoValue;
  double hi = kNoValue;
  int covering = 0;
  for (const auto& [x, change] : events) {
    if (change < 0 && covering >= 2) hi = x;
    covering += change;
    if (change > 0 && covering == 2 && std::isnan(lo)) lo = x;
  }
  std::vector<IsoFlopMinimum> minima;
  if (std::isnan(lo) || std::isnan(hi)) return minima;
  for (double flops : LogSpace(lo, hi, std::max(levels, 1))) {
    IsoFlopMinimum best;
    best.flops = flops;
    best.loss = std::numeric_limits<double>::infinity();
    for (const RunSeries& run : runs) {
      const double loss = InterpolateLogLog(run.points, flops);
      if (std::isnan(loss)) continue;
      ++best.runs_compared;
      if (loss < best.loss) {
        best.loss = loss;
        best.run_id = run.run_id;
        best.n_params = run.n_params;
      }
    }
    // Between two separate overlaps a level may still find a single curve.
    if (best.runs_compared >= 2) minima.push_back(best);
  }
  return minima;
}

ComputeOptimal ChinchillaOptimum(const std::map<std::string, double>& parameters, double flops) {
  const double e = Get(parameters, "E");
  const double a_coef = Get(parameters, "A");
  const double alpha = Get(parameters, "alpha");
  const double b_coef = Get(parameters, "B");
  const double beta = Get(parameters, "beta");
  ComputeOptimal optimum{kNoValue, kNoValue, kNoValue};
  if (!Positive(a_coef) || !Positive(alpha) || !Positive(b_coef) || !Positive(beta) ||
      !Positive(flops) || std::isnan(e)) {
    return optimum;
  }
  const double g = std::pow(alpha * a_coef / (beta * b_coef), 1 / (alpha + beta));
  const double half_products = flops / 6;  // N * D
  optimum.n_params = g * std::pow(half_products, beta / (alpha + beta));
  optimum.tokens = half_products / optimum.n_params;
  optimum.loss =
      e + a_coef / std::pow(optimum.n_params, alpha) + b_coef / std::pow(optimum.tokens, beta);
  return optimum;
}

double ComputeLawLoss(const std::map<std::string, double>& parameters, double flops) {
  const double e = Get(parameters, "E");
  const double k = Get(parameters, "k");
  const double gamma = Get(parameters, "gamma");
  if (!Positive(flops) || std::isnan(e) || std::isnan(k) || std::isnan(gamma)) return kNoValue;
  return e + k * std::pow(flops, -gamma);
}

absl::StatusOr<PlotData> BuildPlotData(const v1::Sweep& sweep,
                                       const v1::GetSweepCurvesResponse& curves,
                                       const v1::GetFitsResponse& fits,
                                       const PlotDataOptions& options) {
  PlotData data;
  data.axis = options.axis;
  data.metric = options.metric;
  data.title = absl::StrCat("sweep ", sweep.id(), sweep.name().empty() ? "" : " " + sweep.name(),
                            ": ", options.metric, " against ",
                            options.axis == PlotAxis::kCompute ? "training compute" : "tokens");
  std::set<std::string> groups;
  std::vector<int64_t> without_record;
  for (const v1::RunCurve& curve : curves.curves()) {
    const v1::Run& run = curve.run();
    RunSeries series;
    series.run_id = run.id();
    series.n_params = static_cast<double>(run.record().n_params());
    if (!sweep.spec().fit().group_by().empty()) series.group = GroupOf(sweep, run);
    double scale = 1;
    if (options.axis == PlotAxis::kCompute) {
      scale = run.record().flops_per_token();
      if (!Positive(scale)) {
        without_record.push_back(run.id());
        continue;
      }
    }
    for (const v1::MetricPoint& point : curve.points()) {
      const XY xy{scale * point.tokens(), point.value()};
      // Log axes: step 0 (no tokens yet) and non-positive values have no place on them.
      if (Positive(xy.x) && Positive(xy.y)) series.points.push_back(xy);
    }
    std::stable_sort(series.points.begin(), series.points.end(),
                     [](const XY& a, const XY& b) { return a.x < b.x; });
    // Downsampled or repeated evaluations may share an x; keep the last of each.
    std::vector<XY> unique;
    for (const XY& xy : series.points) {
      if (!unique.empty() && unique.back().x == xy.x) unique.pop_back();
      unique.push_back(xy);
    }
    series.points = std::move(unique);
    if (series.points.empty()) continue;
    if (!series.group.empty()) groups.insert(series.group);
    data.runs.push_back(std::move(series));
  }
  if (!without_record.empty()) {
    data.notes.push_back(absl::StrCat(
        without_record.size(), " run(s) left out: no run record (flops_per_token) yet: run ",
        absl::StrJoin(without_record.begin(),
                      without_record.begin() + std::min<size_t>(without_record.size(), 10), ", "),
        without_record.size() > 10 ? ", ..." : ""));
  }
  if (data.runs.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sweep ", sweep.id(), " has no ", options.metric, " points to plot yet",
        without_record.empty() ? "" : " (its runs have no run record: " + data.notes.back() + ")"));
  }
  data.groups.assign(groups.begin(), groups.end());
  if (options.axis != PlotAxis::kCompute) return data;

  double x_lo = std::numeric_limits<double>::infinity();
  double x_hi = 0;
  for (const RunSeries& run : data.runs) {
    x_lo = std::min(x_lo, run.points.front().x);
    x_hi = std::max(x_hi, run.points.back().x);
  }
  const std::string fitted =
      sweep.spec().fit().metric().empty() ? "val_loss" : sweep.spec().fit().metric();
  if (fitted == options.metric) {
    AddFits(fits, x_lo, x_hi * options.extrapolate_factor, options, &data);
  } else if (!fits.fits().empty()) {
    data.notes.push_back(
        absl::StrCat("the fits are of ", fitted, "; not drawn over ", options.metric));
  }
  data.isoflop = IsoFlopMinima(data.runs, options.isoflop_levels);
  return data;
}

}  // namespace scalelab::cli
