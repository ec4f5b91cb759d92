#include "tasks/pass_at_k.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

namespace scalelab::tasks {
namespace {

// Exact binomial coefficient; C(60, 30) ~ 1.2e17 fits easily.
unsigned __int128 Binomial(int64_t n, int64_t k) {
  if (k < 0 || k > n) return 0;
  unsigned __int128 value = 1;
  for (int64_t i = 1; i <= k; ++i) value = value * (n - k + i) / i;  // exact at every step
  return value;
}

// 1 - C(n-c, k) / C(n, k) as one rounding of an exact fraction.
double ExactPassAtK(int64_t n, int64_t c, int64_t k) {
  const unsigned __int128 total = Binomial(n, k);
  const unsigned __int128 all_wrong = Binomial(n - c, k);
  return static_cast<double>(static_cast<long double>(total - all_wrong) /
                             static_cast<long double>(total));
}

TEST_CASE("pass@k equals exact rational values for every n <= 60, c and k", "[tasks][pass_at_k]") {
  int checked = 0;
  for (int64_t n = 1; n <= 60; ++n) {
    for (int64_t c = 0; c <= n; ++c) {
      for (int64_t k = 1; k <= n; ++k) {
        absl::StatusOr<double> value = PassAtK(n, c, k);
        REQUIRE(value.ok());
        INFO("n=" << n << " c=" << c << " k=" << k);
        CHECK(*value == Approx(ExactPassAtK(n, c, k)).margin(1e-12));
        ++checked;
      }
    }
  }
  CHECK(checked == 75640);  // sum over n <= 60 of (n + 1) * n
}

TEST_CASE("pass@k hand-worked values and edges", "[tasks][pass_at_k]") {
  CHECK(*PassAtK(10, 3, 2) == Approx(24.0 / 45.0).epsilon(1e-15));  // 1 - C(7,2)/C(10,2)
  CHECK(*PassAtK(10, 3, 1) == Approx(0.3).epsilon(1e-15));          // pass@1 = c/n
  CHECK(*PassAtK(200, 1, 1) == Approx(0.005).epsilon(1e-15));
  CHECK(*PassAtK(5, 0, 1) == 0.0);   // c = 0
  CHECK(*PassAtK(5, 0, 5) == 0.0);   // c = 0, k = n
  CHECK(*PassAtK(5, 5, 1) == 1.0);   // c = n
  CHECK(*PassAtK(10, 8, 3) == 1.0);  // n - c < k: every draw of 3 holds a correct one
  CHECK(*PassAtK(7, 1, 7) == 1.0);   // k = n with one correct
  CHECK(*PassAtK(1, 0, 1) == 0.0);
  CHECK(*PassAtK(1, 1, 1) == 1.0);
}

TEST_CASE("pass@k stays exact where binomials overflow", "[tasks][pass_at_k]") {
  // C(n-c, k) / C(n, k) = prod_{j<k} (n-c-j)/(n-j), another product, in long double.
  for (int64_t n : {200, 1000, 5000}) {
    for (int64_t c : {int64_t{1}, n / 10, n / 2, n - 1}) {
      for (int64_t k : {int64_t{1}, int64_t{10}, n / 4, n - c}) {
        if (k < 1 || k > n) continue;
        long double all_wrong = 1;
        for (int64_t j = 0; j < k; ++j) {
          all_wrong *= static_cast<long double>(n - c - j) / static_cast<long double>(n - j);
        }
        INFO("n=" << n << " c=" << c << " k=" << k);
        CHECK(*PassAtK(n, c, k) == Approx(static_cast<double>(1 - all_wrong)).margin(1e-12));
      }
    }
  }
}

TEST_CASE("pass@k refuses counts it is not defined for", "[tasks][pass_at_k]") {
  CHECK(std::string(PassAtK(10, 3, 11).status().message()) ==
        "pass@k: expected n >= 1, 0 <= c <= n and 1 <= k <= n, got n=10 c=3 k=11");
  CHECK_FALSE(PassAtK(0, 0, 1).ok());
  CHECK_FALSE(PassAtK(10, 11, 1).ok());
  CHECK_FALSE(PassAtK(10, -1, 1).ok());
  CHECK_FALSE(PassAtK(10, 1, 0).ok());
  const std::vector<SampleCounts> counts = {{10, 2}, {4, 1}};
  PassAtKOptions options;
  options.ks = {5};
  CHECK(std::string(EstimatePassAtK(counts, options).status().message())
            .find("problem 1: pass@k: expected") == 0);
  options.ks = {1};
  options.confidence = 1;
  CHECK(
      std::string(EstimatePassAtK(counts, options).status().message()).find("pass@k: confidence") ==
      0);
  CHECK_FALSE(EstimatePassAtK({}, PassAtKOptions{}).ok());
}

TEST_CASE("pass@k averages over problems with a deterministic bootstrap interval",
          "[tasks][pass_at_k]") {
  std::vector<SampleCounts> counts;
  std::mt19937_64 rng(7);
  for (int problem = 0; problem < 50; ++problem) {
    counts.push_back({20, static_cast<int64_t>(rng() % 21)});
  }
  PassAtKOptions options;
  options.ks = {1, 5, 20};
  absl::StatusOr<std::vector<PassAtKValue>> values = EstimatePassAtK(counts, options);
  REQUIRE(values.ok());
  REQUIRE(values->size() == 3);
  for (const PassAtKValue& value : *values) {
    double sum = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      CHECK(value.per_problem[i] == *PassAtK(counts[i].n, counts[i].c, value.k));
      sum += value.per_problem[i];
    }
    CHECK(value.mean == Approx(sum / counts.size()).epsilon(1e-15));
    CHECK(value.lo <= value.mean);
    CHECK(value.mean <= value.hi);
    CHECK(value.lo < value.hi);
  }
  // pass@k grows with k.
  CHECK((*values)[0].mean < (*values)[1].mean);
  CHECK((*values)[1].mean <= (*values)[2].mean);

  absl::StatusOr<std::vector<PassAtKValue>> again = EstimatePassAtK(counts, options);
  REQUIRE(again.ok());
  for (size_t k_idx = 0; k_idx < 3; ++k_idx) {
    CHECK((*again)[k_idx].lo == (*values)[k_idx].lo);
    CHECK((*again)[k_idx].hi == (*values)[k_idx].hi);
  }
  options.seed = 2;
  absl::StatusOr<std::vector<PassAtKValue>> reseeded = EstimatePassAtK(counts, options);
  REQUIRE(reseeded.ok());
  CHECK((*reseeded)[0].lo != (*values)[0].lo);
  CHECK((*reseeded)[0].mean == (*values)[0].mean);

  options.bootstrap_samples = 0;
  absl::StatusOr<std::vector<PassAtKValue>> no_interval = EstimatePassAtK(counts, options);
  REQUIRE(no_interval.ok());
  CHECK(std::isnan((*no_interval)[0].lo));
}

TEST_CASE("The 95% bootstrap interval of pass@1 covers the true rate about 95% of the time",
          "[tasks][pass_at_k]") {
  // 200 simulated evaluations of 100 problems, each solved with probability 0.3 (n = 1). The
  // percentile interval is slightly narrow for small samples; coverage must still be near 0.95.
  constexpr double kTrue = 0.3;
  std::mt19937_64 rng(11);
  std::bernoulli_distribution solved(kTrue);
  int covered = 0;
  double width_sum = 0;
  constexpr int kRepeats = 200;
  for (int repeat = 0; repeat < kRepeats; ++repeat) {
    std::vector<SampleCounts> counts(100);
    for (SampleCounts& problem : counts) problem = {1, solved(rng) ? 1 : 0};
    PassAtKOptions options;
    options.seed = repeat + 1;
    absl::StatusOr<std::vector<PassAtKValue>> values = EstimatePassAtK(counts, options);
    REQUIRE(values.ok());
    covered += (*values)[0].lo <= kTrue && kTrue <= (*values)[0].hi;
    width_sum += (*values)[0].hi - (*values)[0].lo;
  }
  const double coverage = static_cast<double>(covered) / kRepeats;
  CHECK(coverage >= 0.88);
  CHECK(coverage <= 0.99);
  // The normal approximation's width: 2 * 1.96 * sqrt(0.3 * 0.7 / 100) = 0.18.
  CHECK(width_sum / kRepeats == Approx(0.18).margin(0.02));
}

}  // namespace
}  // namespace scalelab::tasks
