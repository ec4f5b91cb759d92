// Points from a known Chinchilla law for the recovery tests, with seeded log-normal noise.
#ifndef SCALELAB_TESTS_ANALYSIS_SYNTHETIC_H_
#define SCALELAB_TESTS_ANALYSIS_SYNTHETIC_H_

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "services/analysis/allocation.h"
#include "services/analysis/chinchilla.h"
#include "services/analysis/scaling_point.h"

namespace scalelab::analysis::testing {

// Hoffmann et al.'s published fit: A 406.4, B 410.7, E 1.69, alpha 0.34, beta 0.28.
inline ChinchillaParams HoffmannParams() {
  ChinchillaParams params;
  params.a = std::log(406.4);
  params.b = std::log(410.7);
  params.e = std::log(1.69);
  params.alpha = 0.34;
  params.beta = 0.28;
  return params;
}

// A grid of `sizes` model sizes from 1e7 to 1e10 parameters and `token_counts` token counts from
// 1e9 to 1e12, each loss multiplied by exp(noise), noise ~ Normal(0, log_sigma).
inline std::vector<ScalingPoint> SyntheticPoints(const ChinchillaParams& params, int sizes,
                                                 int token_counts, double log_sigma,
                                                 uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> noise(0.0, log_sigma);
  std::vector<ScalingPoint> points;
  for (int size_idx = 0; size_idx < sizes; ++size_idx) {
    for (int token_idx = 0; token_idx < token_counts; ++token_idx) {
      ScalingPoint point;
      point.n_params = std::pow(10.0, 7 + 3.0 * size_idx / (sizes - 1));
      point.tokens = std::pow(10.0, 9 + 3.0 * token_idx / (token_counts - 1));
      point.flops = 6 * point.n_params * point.tokens;
      point.loss = Predict(params, point.n_params, point.tokens) *
                   (log_sigma > 0 ? std::exp(noise(rng)) : 1.0);
      point.run_id = static_cast<int64_t>(points.size()) + 1;
      points.push_back(point);
    }
  }
  return points;
}

// A coarse grid (3^5 = 243 starts) that keeps synthetic fits to a fraction of a second.
inline ChinchillaOptions CoarseGridOptions() {
  ChinchillaOptions options;
  options.a_starts = {0, 10, 20};
  options.b_starts = {0, 10, 20};
  options.e_starts = {-1, 0, 1};
  options.alpha_starts = {0, 0.5, 1};
  options.beta_starts = {0, 0.5, 1};
  return options;
}

}  // namespace scalelab::analysis::testing

#endif  // SCALELAB_TESTS_ANALYSIS_SYNTHETIC_H_
