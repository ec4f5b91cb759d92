// Bootstrap confidence intervals for fitted laws and anything derived from them.
//
// A bootstrap draws `samples` resamples of the points (with replacement, as many as there are
// points), refits each, and keeps the parameter vectors; an interval is the pair of percentiles
// of a quantity over those vectors. The laws supply the refit (BootstrapChinchilla in
// chinchilla.h, BootstrapComputeLaw in compute_law.h): each refits from the full fit's best
// parameters rather than from the whole grid of starts. A resample is the same runs with
// different multiplicities, so its optimum lies in the basin of the full fit's; a grid per
// resample would cost 4500 fits instead of one, for the same answer in every case we checked.
#ifndef SCALELAB_SERVICES_ANALYSIS_BOOTSTRAP_H_
#define SCALELAB_SERVICES_ANALYSIS_BOOTSTRAP_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/analysis/scaling_point.h"

namespace scalelab::analysis {

struct BootstrapOptions {
  // Resamples to draw and refit.
  int samples = 1000;
  // Resample s is drawn from a generator seeded by (seed, s) alone, so the samples are the same
  // for any thread count.
  uint64_t seed = 1;
  // Threads refitting resamples; 0 = std::thread::hardware_concurrency().
  int threads = 0;

  // InvalidArgument naming the field when samples < 1 or threads < 0.
  absl::Status Validate() const;
};

// Parameter vectors of the resamples that refit, in resample order: row s, column p is
// values[s * param_names.size() + p] (the layout of the `fits.samples` column).
struct BootstrapSamples {
  std::vector<std::string> param_names;
  std::vector<double> values;
  int requested = 0;  // resamples drawn
  int failed = 0;     // resamples whose refit returned an error (not in `values`)

  size_t num_samples() const {
    return param_names.empty() ? 0 : values.size() / param_names.size();
  }
  absl::Span<const double> Row(size_t sample) const {
    return absl::MakeConstSpan(values).subspan(sample * param_names.size(), param_names.size());
  }
};

// The refit of one resample: a parameter vector of param_names.size() values, or an error (the
// resample is then counted in `failed`). Called from several threads at once.
using RefitFunction =
    std::function<absl::StatusOr<std::vector<double>>(absl::Span<const ScalingPoint> resample)>;

// Indices into the points for resample `sample`: num_points draws with replacement.
std::vector<size_t> ResampleIndices(size_t num_points, uint64_t seed, int sample);

// Draws and refits options.samples resamples. InvalidArgument for bad options or no points;
// FailedPrecondition when every refit failed.
absl::StatusOr<BootstrapSamples> Bootstrap(absl::Span<const ScalingPoint> points,
                                           std::vector<std::string> param_names,
                                           const RefitFunction& refit,
                                           const BootstrapOptions& options);

// A point estimate with a percentile interval.
struct Estimate {
  double value = std::numeric_limits<double>::quiet_NaN();  // from the full fit
  double lo = std::numeric_limits<double>::quiet_NaN();     // the (1 - confidence)/2 percentile
  double hi = std::numeric_limits<double>::quiet_NaN();     // the (1 + confidence)/2 percentile
  int samples_used = 0;     // finite samples the percentiles came from
  int samples_skipped = 0;  // non-finite samples left out
};

// Percentiles of the finite `samples` (linear interpolation between order statistics, as
// numpy.percentile). InvalidArgument when confidence is not in (0, 1); FailedPrecondition when
// no sample is finite.
absl::StatusOr<Estimate> PercentileEstimate(double value, absl::Span<const double> samples,
                                            double confidence);

// A quantity derived from a parameter vector (a row of BootstrapSamples); may return a
// non-finite value for a row where it is undefined, which is then skipped.
using DerivedQuantity = std::function<double(absl::Span<const double> params)>;

// `derive` over every sample row, and over `best` (the full fit's parameters) for the value.
absl::StatusOr<Estimate> EstimateDerived(const BootstrapSamples& samples,
                                         absl::Span<const double> best,
                                         const DerivedQuantity& derive, double confidence);

// One Estimate per parameter, in param_names order.
absl::StatusOr<std::vector<Estimate>> EstimateParams(const BootstrapSamples& samples,
                                                     absl::Span<const double> best,
                                                     double confidence);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_BOOTSTRAP_H_
