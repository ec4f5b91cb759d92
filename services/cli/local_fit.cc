#include "services/cli/local_fit.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "services/analysis/allocation.h"
#include "services/analysis/bootstrap.h"
#include "services/analysis/chinchilla.h"
#include "services/analysis/comparison.h"
#include "services/analysis/compute_law.h"
#include "services/analysis/csv_points.h"
#include "services/cli/fit_format.h"
#include "services/cli/format.h"

namespace scalelab::cli {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kDefaultBootstrap = 1000;

void SetEstimate(const analysis::Estimate& from, v1::Estimate* to) {
  to->set_value(from.value);
  to->set_lo(from.lo);
  to->set_hi(from.hi);
}

// The value alone, for when no bootstrap refit succeeded.
v1::Estimate ValueOnly(double value) {
  v1::Estimate estimate;
  estimate.set_value(value);
  estimate.set_lo(kNaN);
  estimate.set_hi(kNaN);
  return estimate;
}

// `derive` over the bootstrap rows as an interval, or the value alone when there are none.
v1::Estimate Derived(const analysis::BootstrapSamples* samples, const std::vector<double>& best,
                     const analysis::DerivedQuantity& derive, double confidence) {
  if (samples != nullptr) {
    absl::StatusOr<analysis::Estimate> estimate =
        analysis::EstimateDerived(*samples, best, derive, confidence);
    if (estimate.ok()) {
      v1::Estimate out;
      SetEstimate(*estimate, &out);
      return out;
    }
  }
  return ValueOnly(derive(best));
}

// G of the frontier N_opt = G (C/6)^(beta / (alpha + beta)) from a row (a, b, e, alpha, beta);
// NaN without an interior optimum.
double FrontierG(absl::Span<const double> row) {
  const auto p = analysis::ChinchillaParams::FromVector(row);
  if (!(p.alpha > 0 && p.beta > 0)) return kNaN;
  return std::pow(p.alpha * p.A() / (p.beta * p.B()), 1 / (p.alpha + p.beta));
}

// Sets `name` in the fit's parameters and estimates, as the scheduler's GetFits does
// (scheduler/fitting.cc): the fitted parameters under their own names, then the derived ones.
void AddDerived(const analysis::BootstrapSamples* samples, const std::vector<double>& best,
                const std::string& name, const analysis::DerivedQuantity& derive, double confidence,
                v1::Fit* fit) {
  (*fit->mutable_parameters())[name] = derive(best);
  (*fit->mutable_estimates())[name] = Derived(samples, best, derive, confidence);
}

// Every fitted parameter (`names`, in row order) under its own name.
void AddFitted(const analysis::BootstrapSamples* samples, const std::vector<double>& best,
               const std::vector<std::string>& names, double confidence, v1::Fit* fit) {
  for (size_t idx = 0; idx < names.size(); ++idx) {
    AddDerived(
        samples, best, names[idx], [idx](absl::Span<const double> row) { return row[idx]; },
        confidence, fit);
  }
}

absl::Status FitChinchillaInto(const std::vector<analysis::ScalingPoint>& points,
                               const LocalFitOptions& options, v1::Fit* fit) {
  analysis::ChinchillaOptions chinchilla;
  chinchilla.threads = options.threads;
  absl::StatusOr<analysis::ChinchillaFit> best = analysis::FitChinchilla(points, chinchilla);
  if (!best.ok()) return best.status();
  fit->set_loss(best->objective);
  analysis::BootstrapOptions bootstrap;
  bootstrap.samples = options.bootstrap > 0 ? options.bootstrap : kDefaultBootstrap;
  bootstrap.threads = options.threads;
  bootstrap.seed = options.seed;
  absl::StatusOr<analysis::BootstrapSamples> samples =
      analysis::BootstrapChinchilla(points, *best, chinchilla, bootstrap);
  const analysis::BootstrapSamples* rows = samples.ok() ? &*samples : nullptr;
  if (!samples.ok()) {
    fit->set_message(absl::StrCat("no intervals: ", samples.status().message()));
  } else {
    fit->set_bootstrap(static_cast<int>(samples->num_samples()));
  }

  const analysis::ChinchillaParams& params = best->params;
  const std::vector<double> vector = params.ToVector();  // (a, b, e, alpha, beta)
  const double confidence = options.confidence;
  AddFitted(rows, vector, analysis::ChinchillaParamNames(), confidence, fit);
  AddDerived(
      rows, vector, "A", [](absl::Span<const double> row) { return std::exp(row[0]); }, confidence,
      fit);
  AddDerived(
      rows, vector, "B", [](absl::Span<const double> row) { return std::exp(row[1]); }, confidence,
      fit);
  AddDerived(
      rows, vector, "E", [](absl::Span<const double> row) { return std::exp(row[2]); }, confidence,
      fit);
  AddDerived(rows, vector, "G", FrontierG, confidence, fit);

  std::vector<double> budgets = options.budgets_flops;
  if (budgets.empty()) {
    for (int exponent = 18; exponent <= 24; ++exponent) budgets.push_back(std::pow(10, exponent));
  }
  for (double flops : budgets) {
    v1::Allocation* allocation = fit->add_allocations();
    allocation->set_flops(flops);
    if (rows != nullptr) {
      absl::StatusOr<analysis::AllocationEstimate> estimate =
          analysis::EstimateAllocation(params, *rows, flops, options.confidence);
      if (estimate.ok()) {
        SetEstimate(estimate->n_params, allocation->mutable_n_params());
        SetEstimate(estimate->tokens, allocation->mutable_tokens());
        SetEstimate(estimate->loss, allocation->mutable_loss());
        continue;
      }
    }
    absl::StatusOr<analysis::Allocation> point = analysis::OptimalAllocation(params, flops);
    if (!point.ok()) return point.status();
    *allocation->mutable_n_params() = ValueOnly(point->n_params);
    *allocation->mutable_tokens() = ValueOnly(point->tokens);
    *allocation->mutable_loss() = ValueOnly(point->loss);
  }

  absl::StatusOr<analysis::HoldoutResult> holdout =
      analysis::HoldoutLargestModel(points, chinchilla);
  fit->set_holdout_rel_error(holdout.ok() ? holdout->mean_relative_error : kNaN);
  return absl::OkStatus();
}

absl::Status FitComputeInto(const std::vector<analysis::ScalingPoint>& points,
                            const LocalFitOptions& options, v1::Fit* fit) {
  analysis::ComputeLawOptions compute;
  compute.threads = options.threads;
  absl::StatusOr<analysis::ComputeLawFit> best = analysis::FitComputeLaw(points, compute);
  if (!best.ok()) return best.status();
  fit->set_loss(best->objective);
  analysis::BootstrapOptions bootstrap;
  bootstrap.samples = options.bootstrap > 0 ? options.bootstrap : kDefaultBootstrap;
  bootstrap.threads = options.threads;
  bootstrap.seed = options.seed;
  absl::StatusOr<analysis::BootstrapSamples> samples =
      analysis::BootstrapComputeLaw(points, *best, compute, bootstrap);
  const analysis::BootstrapSamples* rows = samples.ok() ? &*samples : nullptr;
  if (!samples.ok()) {
    fit->set_message(absl::StrCat("no intervals: ", samples.status().message()));
  } else {
    fit->set_bootstrap(static_cast<int>(samples->num_samples()));
  }
  const std::vector<double> vector = best->params.ToVector();  // (log_k, e, gamma)
  AddFitted(rows, vector, analysis::ComputeLawParamNames(), options.confidence, fit);
  AddDerived(
      rows, vector, "E", [](absl::Span<const double> row) { return std::exp(row[1]); },
      options.confidence, fit);
  AddDerived(
      rows, vector, "k", [](absl::Span<const double> row) { return std::exp(row[0]); },
      options.confidence, fit);
  // A held-out check needs model sizes; the compute law has none.
  fit->set_holdout_rel_error(kNaN);
  return absl::OkStatus();
}

}  // namespace

absl::Status LocalFitOptions::Validate() const {
  if (csv_path.empty()) return absl::InvalidArgumentError("--csv: expected a CSV file");
  if (law != "chinchilla" && law != "compute") {
    return absl::InvalidArgumentError(
        absl::StrCat("--law: expected chinchilla or compute, got \"", law.substr(0, 80), "\""));
  }
  if (bootstrap < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bootstrap: expected a number of refits, 1 or more (0 = 1000), got ", bootstrap));
  }
  if (!(confidence > 0 && confidence < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("confidence: expected a level between 0 and 1, got ", confidence));
  }
  for (double budget : budgets_flops) {
    if (!std::isfinite(budget) || budget <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--budgets: expected positive FLOP counts, got ", budget));
    }
  }
  if (threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat("threads: expected 0 or more, got ", threads));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::GetFitsResponse> FitCsv(const LocalFitOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  // An exported sweep has rows for runs that failed or never reported a record: left out, and
  // said so in the fit's message.
  std::vector<int> skipped_lines;
  analysis::CsvOptions csv;
  csv.skip_incomplete_rows = true;
  csv.skipped_lines = &skipped_lines;
  absl::StatusOr<std::vector<analysis::ScalingPoint>> points =
      analysis::ReadScalingPointsCsv(options.csv_path, csv);
  if (!points.ok()) return points.status();
  v1::GetFitsResponse response;
  v1::Fit* fit = response.add_fits();
  if (!skipped_lines.empty()) {
    fit->set_message(absl::StrCat("left out ", skipped_lines.size(),
                                  " rows with an empty or zero N, D, C or loss (first at line ",
                                  skipped_lines.front(), ")"));
  }
  fit->set_law(options.law);
  fit->set_n_points(static_cast<int>(points->size()));
  fit->set_confidence(options.confidence);
  for (const analysis::ScalingPoint& point : *points) {
    if (point.run_id != 0) fit->add_run_ids(point.run_id);
  }
  absl::Status status = options.law == "chinchilla" ? FitChinchillaInto(*points, options, fit)
                                                    : FitComputeInto(*points, options, fit);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(options.csv_path, ": ", options.law, " fit of ",
                                                    points->size(), " points: ", status.message()));
  }
  return response;
}

int LocalFit(CliContext& cli, const LocalFitOptions& options) {
  absl::StatusOr<v1::GetFitsResponse> fits = FitCsv(options);
  if (!fits.ok()) {
    *cli.err << "scalelab: fit: " << fits.status().message() << "\n";
    // A file that cannot be read or parsed is the user's input; a fit that fails is not.
    const absl::StatusCode code = fits.status().code();
    return code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kNotFound ? 2
                                                                                             : 1;
  }
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(*fits) << "\n";
    return 0;
  }
  *cli.out << options.csv_path << ": " << fits->fits(0).n_points() << " points\n\n";
  PrintFits(*cli.out, *fits);
  return 0;
}

}  // namespace scalelab::cli
