// Scaling-law fit timings: the full Chinchilla grid (4500 L-BFGS starts) on Epoch AI's 240
// points, then a bootstrap of refits from the best fit. Prints one JSON object per line.
//
//   build/bin/scalelab-fit-bench [--csv=FILE] [--threads=N] [--bootstrap_samples=4000]
//
// Targets on a 2-core machine: the grid under 2 s, 4000 bootstrap refits under 60 s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/analysis/chinchilla.h"
#include "services/analysis/csv_points.h"
#include "services/analysis/internal/lse_kernel.h"

ABSL_FLAG(std::string, csv,
          SCALELAB_SOURCE_DIR "/tests/analysis/testdata/chinchilla_svg_extracted_data.csv",
          "points CSV (N, C or D, loss columns)");
ABSL_FLAG(int, drop_highest, 5, "drop this many highest-loss points first (Epoch drops 5)");
ABSL_FLAG(int, threads, 0, "threads; 0 = all cores");
ABSL_FLAG(int, bootstrap_samples, 4000, "bootstrap refits; 0 skips the bootstrap");
ABSL_FLAG(uint64_t, seed, 1, "bootstrap seed");

namespace {

using scalelab::analysis::BootstrapOptions;
using scalelab::analysis::ChinchillaOptions;

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Process CPU seconds (all threads): on a shared machine, cpu_seconds / threads is what the wall
// time would be without the other tenants.
double CpuSecondsSince(std::clock_t start) {
  return static_cast<double>(std::clock() - start) / CLOCKS_PER_SEC;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<std::vector<scalelab::analysis::ScalingPoint>> all =
      scalelab::analysis::ReadScalingPointsCsv(absl::GetFlag(FLAGS_csv));
  if (!all.ok()) {
    std::fprintf(stderr, "scalelab-fit-bench: %s\n", std::string(all.status().message()).c_str());
    return 1;
  }
  const std::vector<scalelab::analysis::ScalingPoint> points =
      scalelab::analysis::WithoutHighestLoss(*all, absl::GetFlag(FLAGS_drop_highest));
  ChinchillaOptions options;
  options.threads = absl::GetFlag(FLAGS_threads);
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const char* kernel = scalelab::analysis::internal::KernelUsesAvx2() ? "avx2" : "generic";

  const auto grid_start = std::chrono::steady_clock::now();
  const std::clock_t grid_cpu_start = std::clock();
  absl::StatusOr<scalelab::analysis::ChinchillaFit> fit =
      scalelab::analysis::FitChinchilla(points, options);
  const double grid_s = SecondsSince(grid_start);
  const double grid_cpu_s = CpuSecondsSince(grid_cpu_start);
  if (!fit.ok()) {
    std::fprintf(stderr, "scalelab-fit-bench: %s\n", std::string(fit.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n", absl::StrCat("{\"bench\":\"chinchilla_grid\",\"points\":", points.size(),
                                   ",\"threads\":", threads, ",\"kernel\":\"", kernel,
                                   "\",\"seconds\":", grid_s, ",\"cpu_seconds\":", grid_cpu_s,
                                   ",\"starts\":", fit->starts_tried,
                                   ",\"converged\":", fit->starts_converged,
                                   ",\"objective\":", absl::StrFormat("%.10g", fit->objective),
                                   ",\"A\":", fit->params.A(), ",\"B\":", fit->params.B(),
                                   ",\"E\":", fit->params.E(), ",\"alpha\":", fit->params.alpha,
                                   ",\"beta\":", fit->params.beta, "}")
                          .c_str());
  std::fflush(stdout);

  BootstrapOptions bootstrap;
  bootstrap.samples = absl::GetFlag(FLAGS_bootstrap_samples);
  if (bootstrap.samples <= 0) return 0;
  bootstrap.seed = absl::GetFlag(FLAGS_seed);
  bootstrap.threads = options.threads;
  const auto bootstrap_start = std::chrono::steady_clock::now();
  const std::clock_t bootstrap_cpu_start = std::clock();
  absl::StatusOr<scalelab::analysis::BootstrapSamples> samples =
      scalelab::analysis::BootstrapChinchilla(points, *fit, options, bootstrap);
  const double bootstrap_s = SecondsSince(bootstrap_start);
  const double bootstrap_cpu_s = CpuSecondsSince(bootstrap_cpu_start);
  if (!samples.ok()) {
    std::fprintf(stderr, "scalelab-fit-bench: %s\n",
                 std::string(samples.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<scalelab::analysis::ChinchillaEstimates> estimates =
      scalelab::analysis::EstimateChinchilla(fit->params, *samples);
  if (!estimates.ok()) {
    std::fprintf(stderr, "scalelab-fit-bench: %s\n",
                 std::string(estimates.status().message()).c_str());
    return 1;
  }
  std::printf("%s\n",
              absl::StrCat("{\"bench\":\"chinchilla_bootstrap\",\"samples\":", samples->requested,
                           ",\"failed\":", samples->failed, ",\"threads\":", threads,
                           ",\"seconds\":", bootstrap_s, ",\"cpu_seconds\":", bootstrap_cpu_s,
                           ",\"alpha_95\":[", estimates->alpha.lo, ",", estimates->alpha.hi,
                           "],\"beta_95\":[", estimates->beta.lo, ",", estimates->beta.hi,
                           "],\"E_95\":[", estimates->E.lo, ",", estimates->E.hi, "]}")
                  .c_str());
  return 0;
}
