#include "services/cli/results_commands.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/cli/calls.h"
#include "services/cli/export.h"
#include "services/cli/fit_format.h"
#include "services/cli/format.h"
#include "services/cli/gnuplot.h"
#include "services/cli/plot.h"
#include "services/cli/report_format.h"

namespace scalelab::cli {
namespace {

int Refuse(const CliContext& cli, const char* what, const absl::Status& status) {
  *cli.err << "scalelab: " << what << ": " << status.message() << "\n";
  return 2;
}

// Like Fail, and for a scheduler that predates an RPC, says so instead of a bare UNIMPLEMENTED.
int FailResults(const CliContext& cli, const char* what, const char* rpc,
                const grpc::Status& status, const std::string& hint = "") {
  if (status.error_code() != grpc::StatusCode::UNIMPLEMENTED) return Fail(cli, what, status);
  *cli.err << "scalelab: " << what << ": the scheduler at " << cli.address << " does not serve "
           << rpc << " yet (UNIMPLEMENTED"
           << (status.error_message().empty() ? "" : ": " + status.error_message()) << ")"
           << (hint.empty() ? "" : "; " + hint) << "\n";
  return 1;
}

absl::Status CheckSweepId(int64_t sweep_id) {
  if (sweep_id > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("SWEEP: expected a positive sweep id, got ", sweep_id));
}

grpc::Status GetSweep(CliContext& cli, int64_t sweep_id, v1::Sweep* sweep) {
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  grpc::ClientContext context;
  return cli.sweeps->GetSweep(&context, request, sweep);
}

grpc::Status GetFits(CliContext& cli, const FitOptions& options, v1::GetFitsResponse* fits) {
  v1::GetFitsRequest request;
  request.set_sweep_id(options.sweep_id);
  for (double budget : options.budgets_flops) request.add_budgets_flops(budget);
  request.set_compare_n_params(options.compare_n_params);
  request.set_compare_target_loss(options.compare_target_loss);
  grpc::ClientContext context;
  return cli.results->GetFits(&context, request, fits);
}

// Writes `text` to `path` through a temporary file beside it, renamed into place.
absl::Status WriteFileAtomically(const std::string& path, const std::string& text) {
  const std::string temp = absl::StrCat(path, ".partial-", ::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out.good()) {
      const std::string reason = std::strerror(errno);
      std::remove(temp.c_str());
      return absl::InvalidArgumentError(absl::StrCat("--out: cannot write ", path, ": ", reason));
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) {
    std::remove(temp.c_str());
    return absl::InvalidArgumentError(
        absl::StrCat("--out: cannot write ", path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<double>> ParseBudgets(absl::string_view text, absl::string_view flag) {
  std::vector<double> budgets;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    double value = 0;
    if (!absl::SimpleAtod(item, &value) || !std::isfinite(value) || value <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": expected comma-separated positive FLOP counts such as 1e19,1e20, got \"",
          item.substr(0, 80), "\""));
    }
    budgets.push_back(value);
  }
  return budgets;
}

absl::Status FitOptions::Validate() const {
  if (absl::Status status = CheckSweepId(sweep_id); !status.ok()) return status;
  for (double budget : budgets_flops) {
    if (!std::isfinite(budget) || budget <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--budgets: expected positive FLOP counts, got ", budget));
    }
  }
  if (!std::isfinite(compare_n_params) || compare_n_params < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--compare_n: expected a positive parameter count (or 0 for the largest fitted), got ",
        compare_n_params));
  }
  if (!std::isfinite(compare_target_loss) || compare_target_loss < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--compare_loss: expected a positive loss (or 0 for the default), got ",
                     compare_target_loss));
  }
  return absl::OkStatus();
}

int Fit(CliContext& cli, const FitOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return Refuse(cli, "fit", status);
  v1::GetFitsResponse fits;
  grpc::Status status = GetFits(cli, options, &fits);
  if (!status.ok()) {
    return FailResults(
        cli, "fit", "fits (GetFits)", status,
        absl::StrCat("fit the runs here instead: scalelab export ", options.sweep_id,
                     " --out runs.csv && scalelab fit --csv runs.csv --law chinchilla"));
  }
  std::string reason;
  if (fits.fits().empty()) {
    v1::Sweep sweep;
    status = GetSweep(cli, options.sweep_id, &sweep);
    if (!status.ok()) return Fail(cli, "fit", status);
    reason = NoFitsReason(sweep);
  }
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(fits) << "\n";
    if (!reason.empty()) *cli.err << "scalelab: fit: " << reason << "\n";  // stdout stays JSON
    return 0;
  }
  if (!reason.empty()) {
    *cli.out << reason << "\n";
    return 0;
  }
  *cli.out << "sweep " << options.sweep_id << ": " << fits.fits_size()
           << (fits.fits_size() == 1 ? " fit" : " fits") << "\n\n";
  PrintFits(*cli.out, fits);
  return 0;
}

absl::Status PlotOptions::Validate() const {
  if (absl::Status status = CheckSweepId(sweep_id); !status.ok()) return status;
  if (out.empty()) return absl::InvalidArgumentError("--out: expected FILE.svg or FILE.png");
  if (absl::StatusOr<ImageFormat> format = ImageFormatOf(out); !format.ok()) {
    return format.status();
  }
  if (x != "compute" && x != "tokens") {
    return absl::InvalidArgumentError(
        absl::StrCat("--x: expected compute or tokens, got \"", x.substr(0, 80), "\""));
  }
  if (metric.empty()) return absl::InvalidArgumentError("--metric: expected a metric name");
  if (max_points < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_points: expected 0 (all) or more, got ", max_points));
  }
  return absl::OkStatus();
}

int Plot(CliContext& cli, const PlotOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return Refuse(cli, "plot", status);
  v1::Sweep sweep;
  grpc::Status status = GetSweep(cli, options.sweep_id, &sweep);
  if (!status.ok()) return Fail(cli, "plot", status);
  v1::GetSweepCurvesResponse curves;
  status = FetchCurves(cli, options.sweep_id, options.metric, options.max_points, &curves);
  if (!status.ok()) return Fail(cli, "plot", status);

  PlotDataOptions data_options;
  data_options.axis = options.x == "tokens" ? PlotAxis::kTokens : PlotAxis::kCompute;
  data_options.metric = options.metric;
  absl::StatusOr<PlotData> data = BuildPlotData(sweep, curves, {}, data_options);
  if (!data.ok()) {
    *cli.err << "scalelab: plot: " << data.status().message() << "\n";
    return 1;
  }
  int fits_drawn = 0;
  if (data_options.axis == PlotAxis::kCompute && sweep.spec().fit().law() != "none") {
    // Allocations at the decades the plot spans, so that they land on the frontier panel.
    double x_lo = data->runs.front().points.front().x;
    double x_hi = 0;
    for (const RunSeries& run : data->runs) {
      x_lo = std::min(x_lo, run.points.front().x);
      x_hi = std::max(x_hi, run.points.back().x);
    }
    FitOptions fit_options;
    fit_options.sweep_id = options.sweep_id;
    fit_options.budgets_flops = DecadesBetween(x_lo, x_hi * data_options.extrapolate_factor);
    v1::GetFitsResponse fits;
    status = GetFits(cli, fit_options, &fits);
    if (status.ok()) {
      data = BuildPlotData(sweep, curves, fits, data_options);
      if (!data.ok()) return Refuse(cli, "plot", data.status());
      fits_drawn = static_cast<int>(data->laws.size());
    } else {
      // The curves are worth drawing without the fits.
      *cli.err << "scalelab: plot: fits not drawn: "
               << (status.error_code() == grpc::StatusCode::UNIMPLEMENTED
                       ? "the scheduler does not serve fits yet (GetFits is UNIMPLEMENTED)"
                       : status.error_message())
               << "\n";
    }
  }
  for (const std::string& note : data->notes) *cli.err << "scalelab: plot: " << note << "\n";

  GnuplotOptions gnuplot;
  gnuplot.gnuplot = options.gnuplot;
  absl::StatusOr<std::string> script = RenderPlot(*data, options.out, options.keep_script, gnuplot);
  if (!script.ok()) {
    *cli.err << "scalelab: plot: " << script.status().message() << "\n";
    return script.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  *cli.out << "wrote " << options.out << ": " << data->runs.size() << " runs, " << fits_drawn
           << (fits_drawn == 1 ? " fit" : " fits") << ", " << data->isoflop.size()
           << " isoFLOP minima\n";
  if (!script->empty()) *cli.out << "gnuplot script: " << *script << "\n";
  return 0;
}

absl::Status ExportOptions::Validate() const {
  if (absl::Status status = CheckSweepId(sweep_id); !status.ok()) return status;
  if (format != "csv" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("--format: expected csv or json, got \"", format.substr(0, 80), "\""));
  }
  if (rows != "runs" && rows != "points") {
    return absl::InvalidArgumentError(
        absl::StrCat("--rows: expected runs or points, got \"", rows.substr(0, 80), "\""));
  }
  if (rows == "points" && names.empty()) {
    return absl::InvalidArgumentError("--names: expected at least one metric name");
  }
  std::error_code ec;
  if (!out.empty() && std::filesystem::is_directory(out, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("--out: ", out, " is a folder, not a file"));
  }
  return absl::OkStatus();
}

int Export(CliContext& cli, const ExportOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) {
    return Refuse(cli, "export", status);
  }
  v1::Sweep sweep;  // NOT_FOUND for a sweep that does not exist, rather than an empty table
  grpc::Status status = GetSweep(cli, options.sweep_id, &sweep);
  if (!status.ok()) return Fail(cli, "export", status);
  TidyTable table;
  if (options.rows == "runs") {
    v1::ListRunsRequest request;
    request.set_sweep_id(options.sweep_id);
    RunListing listing;
    status = FetchRuns(cli, request, /*all_runs=*/true, &listing);
    if (!status.ok()) return Fail(cli, "export", status);
    table = RunTable(listing.runs);
  } else {
    std::vector<std::pair<std::string, v1::GetSweepCurvesResponse>> curves_by_metric;
    for (const std::string& name : options.names) {
      v1::GetSweepCurvesResponse curves;
      status = FetchCurves(cli, options.sweep_id, name, /*max_points=*/0, &curves);
      if (!status.ok()) return Fail(cli, "export", status);
      curves_by_metric.emplace_back(name, std::move(curves));
    }
    table = PointTable(curves_by_metric);
  }
  if (options.out.empty()) {
    options.format == "csv" ? WriteCsv(*cli.out, table) : WriteJson(*cli.out, table);
    return 0;
  }
  std::ostringstream text;
  options.format == "csv" ? WriteCsv(text, table) : WriteJson(text, table);
  if (absl::Status written = WriteFileAtomically(options.out, text.str()); !written.ok()) {
    *cli.err << "scalelab: export: " << written.message() << "\n";
    return 1;
  }
  *cli.out << "wrote " << table.rows.size() << " " << options.rows << " rows, "
           << table.columns.size() << " columns to " << options.out << "\n";
  return 0;
}

absl::Status CarbonOptions::Validate() const {
  if (absl::Status status = CheckSweepId(sweep_id); !status.ok()) return status;
  if (!std::isfinite(pue) || (pue != 0 && pue < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--pue: expected a power usage effectiveness of at least 1 (or 0 for the default), "
        "got ",
        pue));
  }
  if (!std::isfinite(grid_g_per_kwh) || grid_g_per_kwh < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--grid: expected a grid intensity in gCO2e/kWh, 0 or more, got ", grid_g_per_kwh));
  }
  return absl::OkStatus();
}

int CarbonReport(CliContext& cli, const CarbonOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) {
    return Refuse(cli, "report carbon", status);
  }
  v1::GetCarbonReportRequest request;
  request.set_sweep_id(options.sweep_id);
  request.set_pue(options.pue);
  request.set_grid_g_per_kwh(options.grid_g_per_kwh);
  v1::CarbonReport report;
  grpc::ClientContext context;
  grpc::Status status = cli.results->GetCarbonReport(&context, request, &report);
  if (!status.ok()) {
    return FailResults(cli, "report carbon", "carbon reports (GetCarbonReport)", status);
  }
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(report) << "\n";
  } else {
    PrintCarbonReport(*cli.out, report);
  }
  return 0;
}

int ReliabilityReport(CliContext& cli, int64_t sweep_id) {
  if (sweep_id < 0) {
    return Refuse(cli, "report reliability",
                  absl::InvalidArgumentError(absl::StrCat(
                      "SWEEP: expected a positive sweep id (or --cluster), got ", sweep_id)));
  }
  v1::GetReliabilityReportRequest request;
  request.set_sweep_id(sweep_id);
  v1::ReliabilityReport report;
  grpc::ClientContext context;
  grpc::Status status = cli.results->GetReliabilityReport(&context, request, &report);
  if (!status.ok()) {
    return FailResults(cli, "report reliability", "reliability reports (GetReliabilityReport)",
                       status);
  }
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(report) << "\n";
  } else {
    PrintReliabilityReport(*cli.out, sweep_id, report);
  }
  return 0;
}

}  // namespace scalelab::cli
