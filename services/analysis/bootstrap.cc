#include "services/analysis/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/internal/parallel.h"

namespace scalelab::analysis {
namespace {

// SplitMix64 (Steele, Lea, Flood 2014): a full-period generator whose outputs from consecutive
// seeds are uncorrelated, so it both derives the per-resample seed and draws the indices. Its
// output is fixed by the algorithm, unlike std::uniform_int_distribution's.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

}  // namespace

absl::Status BootstrapOptions::Validate() const {
  if (samples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap.samples: expected >= 1, got ", samples));
  }
  if (threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("bootstrap.threads: expected >= 0 (0 = all cores), got ", threads));
  }
  return absl::OkStatus();
}

std::vector<size_t> ResampleIndices(size_t num_points, uint64_t seed, int sample) {
  // Mix the seed and the resample number through one generator step each, so nearby seeds and
  // nearby resamples give unrelated streams.
  SplitMix64 seeder(seed);
  const uint64_t stream = seeder.Next() ^ SplitMix64(static_cast<uint64_t>(sample)).Next();
  SplitMix64 rng(stream);
  std::vector<size_t> indices(num_points);
  for (size_t& index : indices) {
    // Lemire's multiply-shift: uniform up to a bias of num_points / 2^64.
    index = static_cast<size_t>((static_cast<unsigned __int128>(rng.Next()) * num_points) >> 64);
  }
  return indices;
}

absl::StatusOr<BootstrapSamples> Bootstrap(absl::Span<const ScalingPoint> points,
                                           std::vector<std::string> param_names,
                                           const RefitFunction& refit,
                                           const BootstrapOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (points.empty()) return absl::InvalidArgumentError("bootstrap: no points to resample");
  if (param_names.empty()) return absl::InvalidArgumentError("bootstrap: no parameter names");
  const size_t num_params = param_names.size();
  // Each resample writes its own slot; compacted in resample order afterwards.
  std::vector<std::vector<double>> rows(options.samples);
  std::vector<char> ok(options.samples, 0);
  internal::ParallelFor(options.samples, options.threads, [&](int /*worker*/, int sample) {
    std::vector<ScalingPoint> resample;
    resample.reserve(points.size());
    for (size_t index : ResampleIndices(points.size(), options.seed, sample)) {
      resample.push_back(points[index]);
    }
    absl::StatusOr<std::vector<double>> params = refit(resample);
    if (params.ok() && params->size() == num_params) {
      rows[sample] = *std::move(params);
      ok[sample] = 1;
    }
  });
  BootstrapSamples result;
  result.param_names = std::move(param_names);
  result.requested = options.samples;
  result.values.reserve(options.samples * num_params);
  for (int sample = 0; sample < options.samples; ++sample) {
    if (!ok[sample]) {
      ++result.failed;
      continue;
    }
    result.values.insert(result.values.end(), rows[sample].begin(), rows[sample].end());
  }
  if (result.num_samples() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("bootstrap: all ", options.samples, " refits failed"));
  }
  return result;
}

absl::StatusOr<Estimate> PercentileEstimate(double value, absl::Span<const double> samples,
                                            double confidence) {
  if (!(confidence > 0 && confidence < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("confidence: expected a number in (0, 1), got ", confidence));
  }
  std::vector<double> finite;
  finite.reserve(samples.size());
  for (double sample : samples) {
    if (std::isfinite(sample)) finite.push_back(sample);
  }
  Estimate estimate;
  estimate.value = value;
  estimate.samples_used = static_cast<int>(finite.size());
  estimate.samples_skipped = static_cast<int>(samples.size() - finite.size());
  if (finite.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("percentile interval: none of the ", samples.size(), " samples is finite"));
  }
  std::sort(finite.begin(), finite.end());
  auto percentile = [&](double quantile) {
    const double rank = quantile * static_cast<double>(finite.size() - 1);
    const size_t below = static_cast<size_t>(std::floor(rank));
    const size_t above = std::min(below + 1, finite.size() - 1);
    return finite[below] + (rank - static_cast<double>(below)) * (finite[above] - finite[below]);
  };
  estimate.lo = percentile((1 - confidence) / 2);
  estimate.hi = percentile((1 + confidence) / 2);
  return estimate;
}

absl::StatusOr<Estimate> EstimateDerived(const BootstrapSamples& samples,
                                         absl::Span<const double> best,
                                         const DerivedQuantity& derive, double confidence) {
  std::vector<double> derived(samples.num_samples());
  for (size_t sample = 0; sample < derived.size(); ++sample) {
    derived[sample] = derive(samples.Row(sample));
  }
  return PercentileEstimate(derive(best), derived, confidence);
}

absl::StatusOr<std::vector<Estimate>> EstimateParams(const BootstrapSamples& samples,
                                                     absl::Span<const double> best,
                                                     double confidence) {
  if (best.size() != samples.param_names.size()) {
    return absl::InvalidArgumentError(absl::StrCat("estimate: ", best.size(), " best values for ",
                                                   samples.param_names.size(), " parameters"));
  }
  std::vector<Estimate> estimates;
  for (size_t param = 0; param < best.size(); ++param) {
    absl::StatusOr<Estimate> estimate = EstimateDerived(
        samples, best, [param](absl::Span<const double> row) { return row[param]; }, confidence);
    if (!estimate.ok()) return estimate.status();
    estimates.push_back(*estimate);
  }
  return estimates;
}

}  // namespace scalelab::analysis
