// The numbers behind `scalelab plot`, apart from drawing them (gnuplot.h draws): each run's
// curve against training compute or tokens, the fitted laws as lines, the compute-optimal
// frontier, and the isoFLOP minima. Pure functions of the API's messages.
#ifndef SCALELAB_SERVICES_CLI_PLOT_H_
#define SCALELAB_SERVICES_CLI_PLOT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scalelab/v1/results.pb.h"
#include "scalelab/v1/sweep.pb.h"

namespace scalelab::cli {

enum class PlotAxis {
  kCompute,  // x = C = run.record.flops_per_token x point.tokens (FLOPs)
  kTokens,   // x = point.tokens
};

struct XY {
  double x = 0;
  double y = 0;
};

// One run's curve: points with positive, finite x and y, in increasing x.
struct RunSeries {
  int64_t run_id = 0;
  double n_params = 0;  // N from the run record; 0 when the run has none
  std::string group;    // the run's fit group ("data.mix=web"); "" when the sweep has none
  std::vector<XY> points;
};

// A fitted law drawn along x (loss against C), or the frontier N_opt(C).
struct LawLine {
  std::string label;
  std::vector<XY> points;
};

// The lowest loss any run reaches at a compute level, interpolated along each run's curve.
struct IsoFlopMinimum {
  double flops = 0;
  double loss = 0;
  int64_t run_id = 0;   // the run that reaches it
  double n_params = 0;  // that run's N (0 when unknown)
  int runs_compared = 0;
};

// An allocation of a fit, for the frontier panel: N_opt with its interval (NaN when none).
struct FrontierPoint {
  double flops = 0;
  double n_params = 0;
  double lo = 0;
  double hi = 0;
};

struct PlotData {
  PlotAxis axis = PlotAxis::kCompute;
  std::string title;
  std::string metric;                      // the y quantity, e.g. "val_loss"
  std::vector<RunSeries> runs;             // in the order of the curves
  std::vector<std::string> groups;         // distinct RunSeries::group values, sorted; empty = none
  std::vector<LawLine> laws;               // loss along C, one per fit (compute axis only)
  std::vector<LawLine> frontiers;          // N_opt(C), one per chinchilla fit (compute axis only)
  std::vector<FrontierPoint> allocations;  // of every chinchilla fit
  std::vector<IsoFlopMinimum> isoflop;     // compute axis only
  std::vector<std::string> notes;          // what was left out and why, for the user
};

struct PlotDataOptions {
  PlotAxis axis = PlotAxis::kCompute;
  std::string metric = "val_loss";  // what the curves hold
  int isoflop_levels = 12;          // compute levels, log-spaced over the covered range
  int law_points = 100;             // points per drawn law line
  // Law lines run from the smallest C plotted to this many times the largest.
  double extrapolate_factor = 10;
};

// Builds the series. Runs without a run record (flops_per_token) are left out of the compute
// axis with a note; fits are drawn only when they fitted the plotted metric. InvalidArgument
// when no run has a point to plot.
absl::StatusOr<PlotData> BuildPlotData(const v1::Sweep& sweep,
                                       const v1::GetSweepCurvesResponse& curves,
                                       const v1::GetFitsResponse& fits,
                                       const PlotDataOptions& options);

// `count` values from lo to hi, evenly spaced in log space (count >= 2; lo, hi > 0).
std::vector<double> LogSpace(double lo, double hi, int count);

// Powers of ten from lo to hi (both included when they are powers): budgets to ask fits for.
std::vector<double> DecadesBetween(double lo, double hi);

// The curve's y at x, interpolated linearly in log x and log y between the neighbouring points;
// NaN when x lies outside the curve's x range. `curve` is in increasing x with positive values.
double InterpolateLogLog(const std::vector<XY>& curve, double x);

// For `levels` compute values log-spaced from the first to the last x where at least two runs'
// curves overlap, the run with the lowest interpolated loss. Levels that fewer than two curves
// cover (in a gap between two overlaps) are skipped.
std::vector<IsoFlopMinimum> IsoFlopMinima(const std::vector<RunSeries>& runs, int levels);

// Chinchilla L(N,D) = E + A/N^alpha + B/D^beta and its compute-optimal allocation of C = 6 N D:
// N_opt = G (C/6)^a, D_opt = (C/6)^b / G with G = (alpha A / (beta B))^(1/(alpha+beta)),
// a = beta/(alpha+beta), b = alpha/(alpha+beta). `parameters` holds E, A, alpha, B, beta.
struct ComputeOptimal {
  double n_params = 0;
  double tokens = 0;
  double loss = 0;
};
ComputeOptimal ChinchillaOptimum(const std::map<std::string, double>& parameters, double flops);
// Compute law L(C) = E + k C^-gamma; `parameters` holds E, k, gamma.
double ComputeLawLoss(const std::map<std::string, double>& parameters, double flops);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_PLOT_H_
