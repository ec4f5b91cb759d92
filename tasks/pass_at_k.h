// pass@k: the chance that at least one of k samples drawn (without replacement) from n
// generations of which c are correct is correct, estimated without bias as
//   pass@k = 1 - C(n - c, k) / C(n, k)
// (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", the HumanEval paper),
// computed in the stable product form of their reference implementation:
//   1 - prod_{i = n - c + 1}^{n} (1 - k / i),   and exactly 1 when n - c < k.
// Averaged over problems, with a percentile bootstrap interval over problems.
#ifndef SCALELAB_TASKS_PASS_AT_K_H_
#define SCALELAB_TASKS_PASS_AT_K_H_

#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace scalelab::tasks {

// One problem's pass@k. InvalidArgument unless n >= 1, 0 <= c <= n and 1 <= k <= n (the
// estimator needs k of the n samples; HumanEval's code returns 1.0 for k > n, which says
// nothing).
absl::StatusOr<double> PassAtK(int64_t n, int64_t c, int64_t k);

// One problem's samples: n generations, c of them correct.
struct SampleCounts {
  int64_t n = 0;
  int64_t c = 0;
};

struct PassAtKOptions {
  // The k to report; each must be in [1, min over problems of n].
  std::vector<int64_t> ks = {1};
  // Bootstrap resamples of the problems (0 = no interval).
  int bootstrap_samples = 1000;
  // Resample s draws from a generator seeded by (seed, s) alone: the interval is a function of
  // the counts, the ks and these options.
  uint64_t seed = 1;
  // Central percentile interval, e.g. 0.95 = the 2.5th and 97.5th percentiles.
  double confidence = 0.95;

  // InvalidArgument naming the field.
  absl::Status Validate() const;
};

struct PassAtKValue {
  int64_t k = 0;
  double mean = std::numeric_limits<double>::quiet_NaN();  // over problems
  double lo = std::numeric_limits<double>::quiet_NaN();    // bootstrap percentile interval;
  double hi = std::numeric_limits<double>::quiet_NaN();    // NaN when bootstrap_samples = 0
  std::vector<double> per_problem;                         // in the order of the counts
};

// pass@k per problem and averaged, for every k in options.ks (in that order). InvalidArgument
// for bad options, no problems, a problem with bad counts (naming its index) or a k above a
// problem's n.
absl::StatusOr<std::vector<PassAtKValue>> EstimatePassAtK(absl::Span<const SampleCounts> problems,
                                                          const PassAtKOptions& options);

}  // namespace scalelab::tasks

#endif  // SCALELAB_TASKS_PASS_AT_K_H_
