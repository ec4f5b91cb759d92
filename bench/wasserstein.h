// Distances between samples of numbers, for the numerics harness (bench/numerics.cc): how far
// apart two sets of weights are as distributions, the measure of Golden et al. 2024 ("Is Flash
// Attention Stable?") for comparing trainings that differ only in their numerics.

#ifndef SCALELAB_BENCH_WASSERSTEIN_H_
#define SCALELAB_BENCH_WASSERSTEIN_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"

namespace scalelab::bench {

// The 1-D Wasserstein-1 (earth mover's) distance between the empirical distributions of two
// samples of equal size n: mean_i |sorted(a)_i - sorted(b)_i|. Order-free: it compares the
// values' distributions, not element pairs, so a permutation of either sample leaves it unchanged.
// InvalidArgument when the sizes differ or are 0.
inline absl::StatusOr<double> Wasserstein1(std::vector<double> a, std::vector<double> b) {
  if (a.size() != b.size() || a.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "Wasserstein1: expected two non-empty samples of equal size, got sizes %d and %d", a.size(),
        b.size()));
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  double total = 0;
  for (size_t idx = 0; idx < a.size(); ++idx) total += std::fabs(a[idx] - b[idx]);
  return total / static_cast<double>(a.size());
}

}  // namespace scalelab::bench

#endif  // SCALELAB_BENCH_WASSERSTEIN_H_
