#include "services/cli/fit_format.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/cli/format.h"
#include "services/common/run_state.h"

namespace scalelab::cli {
namespace {

// Parameters in the order the laws are written, then the frontier's G and the fitted log-space
// parameters (as the scheduler names them, scheduler/fitting.cc); anything else after these.
const std::vector<std::string>& KnownOrder(const std::string& law) {
  static const std::vector<std::string> kChinchilla = {"E", "A", "alpha", "B", "beta",
                                                       "G", "a", "b",     "e"};
  static const std::vector<std::string> kCompute = {"E", "k", "gamma", "log_k", "e"};
  return law == "compute" ? kCompute : kChinchilla;
}

// What a parameter that is not in the law as written means.
std::string Meaning(const std::string& name) {
  static const std::map<std::string, std::string> kMeanings = {
      {"G", "N_opt = G (C/6)^(beta/(alpha+beta))"},
      {"a", "ln A"},
      {"b", "ln B"},
      {"e", "ln E"},
      {"log_k", "ln k"}};
  auto found = kMeanings.find(name);
  return found == kMeanings.end() ? "" : found->second;
}

std::string LawText(const std::string& law) {
  if (law == "chinchilla") return "chinchilla L(N,D) = E + A/N^alpha + B/D^beta";
  if (law == "compute") return "compute L(C) = E + k*C^-gamma";
  return law;
}

// "(95%)", or "" when the server did not say.
std::string ConfidenceText(double confidence) {
  if (!(confidence > 0 && confidence < 1)) return "";
  return absl::StrFormat("(%g%%)", 100 * confidence);
}

void PrintParameters(std::ostream& out, const v1::Fit& fit) {
  std::vector<std::string> names;
  for (const std::string& name : KnownOrder(fit.law())) {
    if (fit.estimates().count(name) > 0 || fit.parameters().count(name) > 0) names.push_back(name);
  }
  std::map<std::string, int> rest;  // sorted
  for (const auto& [name, estimate] : fit.estimates()) rest[name];
  for (const auto& [name, value] : fit.parameters()) rest[name];
  for (const auto& [name, unused] : rest) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  const std::string confidence = ConfidenceText(fit.confidence());
  std::vector<std::vector<std::string>> rows;
  for (const std::string& name : names) {
    auto estimate = fit.estimates().find(name);
    if (estimate == fit.estimates().end()) {
      rows.push_back(
          {name, Significant(fit.parameters().at(name), 4), "(no interval)", Meaning(name)});
      continue;
    }
    const v1::Estimate& e = estimate->second;
    const bool has_interval = !std::isnan(e.lo()) && !std::isnan(e.hi());
    rows.push_back(
        {name, EstimateText(e, 4), has_interval ? confidence : "(no interval)", Meaning(name)});
  }
  PrintTable(out, {}, rows, "  ");
}

void PrintAllocations(std::ostream& out, const v1::Fit& fit) {
  if (fit.allocations().empty()) return;
  std::vector<std::vector<std::string>> rows;
  for (const v1::Allocation& allocation : fit.allocations()) {
    rows.push_back({Significant(allocation.flops(), 3), EstimateText(allocation.n_params(), 3),
                    EstimateText(allocation.tokens(), 3), EstimateText(allocation.loss(), 4)});
  }
  out << "  compute-optimal allocations (C = 6 N D) " << ConfidenceText(fit.confidence()) << ":\n";
  PrintTable(out, {"BUDGET_FLOPS", "N_OPT (params)", "D_OPT (tokens)", "LOSS"}, rows, "    ");
}

void PrintFit(std::ostream& out, const v1::Fit& fit) {
  std::string title = absl::StrCat("fit", fit.id() > 0 ? absl::StrCat(" ", fit.id()) : "", ": ",
                                   LawText(fit.law()), "; group ", GroupText(fit.group()));
  if (fit.parameters().empty() && fit.estimates().empty()) {
    out << title << "\n  no fit: " << (fit.message().empty() ? "(no reason given)" : fit.message())
        << "\n";
    return;
  }
  out << title << "\n";
  std::string points = absl::StrCat("  ", fit.n_points(), " points");
  if (!fit.run_ids().empty()) absl::StrAppend(&points, " from ", fit.run_ids_size(), " runs");
  absl::StrAppend(&points, ", objective ", Significant(fit.loss(), 4), " (sum of Huber terms)");
  if (fit.bootstrap() > 0) {
    absl::StrAppend(&points, ", intervals from ", fit.bootstrap(), " bootstrap refits");
  }
  out << points << "\n";
  PrintParameters(out, fit);
  if (std::isnan(fit.holdout_rel_error())) {
    out << "  held-out extrapolation error: n/a"
        << (fit.law() == "compute" ? "" : " (too few model sizes to hold the largest out)") << "\n";
  } else {
    out << "  held-out extrapolation error: "
        << absl::StrFormat("%.2f%%", 100 * fit.holdout_rel_error())
        << " (refit without the largest N, mean |pred - actual| / actual on it)\n";
  }
  if (!fit.message().empty()) out << "  note: " << fit.message() << "\n";
  PrintAllocations(out, fit);
}

}  // namespace

std::string EstimateText(const v1::Estimate& estimate, int digits) {
  std::string text = Significant(estimate.value(), digits);
  const double lo = estimate.lo();
  const double hi = estimate.hi();
  if (std::isnan(lo) || std::isnan(hi)) return text;
  int interval_digits = 2;
  const double width = std::fabs(hi - lo);
  const double bound = std::max(std::fabs(lo), std::fabs(hi));
  if (width > 0 && bound > 0 && std::isfinite(width) && std::isfinite(bound)) {
    // Enough digits that the last one shown resolves the interval's width.
    // The epsilon keeps 48.848 - 48.748 = 0.09999... from counting as a smaller decade.
    const int spread = static_cast<int>(std::floor(std::log10(bound) + 1e-9) -
                                        std::floor(std::log10(width) + 1e-9));
    interval_digits = std::clamp(spread + 2, 2, digits + 2);
  }
  return absl::StrCat(text, " [", Significant(lo, interval_digits), ", ",
                      Significant(hi, interval_digits), "]");
}

std::string GroupText(const google::protobuf::Map<std::string, std::string>& group) {
  if (group.empty()) return "all runs";
  std::map<std::string, std::string> sorted(group.begin(), group.end());
  std::vector<std::string> parts;
  for (const auto& [key, value] : sorted) parts.push_back(absl::StrCat(key, "=", value));
  return absl::StrJoin(parts, " ");
}

void PrintFits(std::ostream& out, const v1::GetFitsResponse& fits) {
  for (int fit_idx = 0; fit_idx < fits.fits_size(); ++fit_idx) {
    if (fit_idx > 0) out << "\n";
    PrintFit(out, fits.fits(fit_idx));
  }
  if (fits.comparisons().empty()) return;
  out << "\ndata efficiency: tokens SLOWER needs to reach TARGET_LOSS at N_PARAMS, over the "
         "tokens FASTER needs\n";
  const std::string confidence =
      fits.fits().empty() ? "" : ConfidenceText(fits.fits(0).confidence());
  std::vector<std::vector<std::string>> rows;
  for (const v1::EfficiencyComparison& comparison : fits.comparisons()) {
    rows.push_back({GroupText(comparison.faster()), GroupText(comparison.slower()),
                    Significant(comparison.n_params(), 3), Significant(comparison.target_loss(), 4),
                    absl::StrCat(EstimateText(comparison.multiplier(), 3), "x")});
  }
  PrintTable(out,
             {"FASTER", "SLOWER", "N_PARAMS", "TARGET_LOSS",
              absl::StrCat("MULTIPLIER", confidence.empty() ? "" : " " + confidence)},
             rows, "  ");
}

std::string NoFitsReason(const v1::Sweep& sweep) {
  const std::string law = sweep.spec().fit().law();
  const std::string prefix = absl::StrCat("sweep ", sweep.id(), " has no fits");
  if (law == "none") return absl::StrCat(prefix, ": its manifest asks for none (fit.law: none)");
  if (sweep.state() == v1::SWEEP_STATE_RUNNING) {
    int finished = 0;
    for (const auto& [state, count] : sweep.runs_by_state()) {
      auto parsed = services::ParseRunState(state);
      if (parsed.ok() && services::IsTerminal(*parsed)) finished += count;
    }
    return absl::StrCat(prefix, " yet: it is still running (", finished, " of ", sweep.total_runs(),
                        " runs finished); fits are computed when the sweep or a fit group "
                        "completes");
  }
  return absl::StrCat(prefix, ": it ended ", services::SweepStateName(sweep.state()),
                      " and no fit was stored (too few finished runs with a run record?)");
}

}  // namespace scalelab::cli
