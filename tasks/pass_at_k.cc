#include "tasks/pass_at_k.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "services/analysis/bootstrap.h"

namespace scalelab::tasks {

absl::StatusOr<double> PassAtK(int64_t n, int64_t c, int64_t k) {
  if (n < 1 || c < 0 || c > n || k < 1 || k > n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pass@k: expected n >= 1, 0 <= c <= n and 1 <= k <= n, got n=", n, " c=", c, " k=", k));
  }
  if (n - c < k) return 1.0;
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i): c factors, each in (0, 1), so no
  // binomial is ever formed and nothing overflows for any n.
  double fail_all = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) {
    fail_all *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  }
  return 1.0 - fail_all;
}

absl::Status PassAtKOptions::Validate() const {
  if (ks.empty()) return absl::InvalidArgumentError("pass@k: ks: expected at least one k");
  for (int64_t k : ks) {
    if (k < 1)
      return absl::InvalidArgumentError(absl::StrCat("pass@k: ks: expected k >= 1, got ", k));
  }
  if (bootstrap_samples < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("pass@k: bootstrap_samples: expected >= 0, got ", bootstrap_samples));
  }
  if (!(confidence > 0 && confidence < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("pass@k: confidence: expected a value in (0, 1), got ", confidence));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PassAtKValue>> EstimatePassAtK(absl::Span<const SampleCounts> problems,
                                                          const PassAtKOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (problems.empty()) return absl::InvalidArgumentError("pass@k: no problems");
  std::vector<PassAtKValue> values;
  values.reserve(options.ks.size());
  for (int64_t k : options.ks) {
    PassAtKValue& value = values.emplace_back();
    value.k = k;
    value.per_problem.reserve(problems.size());
    double sum = 0;
    for (size_t problem_idx = 0; problem_idx < problems.size(); ++problem_idx) {
      const SampleCounts& counts = problems[problem_idx];
      absl::StatusOr<double> estimate = PassAtK(counts.n, counts.c, k);
      if (!estimate.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("problem ", problem_idx, ": ", estimate.status().message()));
      }
      value.per_problem.push_back(*estimate);
      sum += *estimate;
    }
    value.mean = sum / static_cast<double>(problems.size());
  }
  if (options.bootstrap_samples == 0) return values;

  // Resample the problems, not the samples within a problem: the question is how the mean would
  // move with another draw of problems from the same distribution. The same resamples serve
  // every k, so the intervals of different k are paired.
  std::vector<std::vector<double>> means(values.size());
  for (auto& row : means) row.reserve(options.bootstrap_samples);
  for (int sample = 0; sample < options.bootstrap_samples; ++sample) {
    const std::vector<size_t> indices =
        analysis::ResampleIndices(problems.size(), options.seed, sample);
    for (size_t k_idx = 0; k_idx < values.size(); ++k_idx) {
      double sum = 0;
      for (size_t index : indices) sum += values[k_idx].per_problem[index];
      means[k_idx].push_back(sum / static_cast<double>(indices.size()));
    }
  }
  for (size_t k_idx = 0; k_idx < values.size(); ++k_idx) {
    absl::StatusOr<analysis::Estimate> interval =
        analysis::PercentileEstimate(values[k_idx].mean, means[k_idx], options.confidence);
    if (!interval.ok()) return interval.status();
    values[k_idx].lo = interval->lo;
    values[k_idx].hi = interval->hi;
  }
  return values;
}

}  // namespace scalelab::tasks
