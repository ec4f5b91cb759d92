// SplitMix64 (Steele, Lea, Flood 2014) for the generators: its output is fixed by the algorithm,
// unlike std::uniform_int_distribution's, so a (seed, index) gives the same problem on every
// platform and standard library.
#ifndef SCALELAB_TASKS_INTERNAL_RNG_H_
#define SCALELAB_TASKS_INTERNAL_RNG_H_

#include <cstdint>

namespace scalelab::tasks::internal {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  // Uniform in [lo, hi] (lo <= hi), by Lemire's multiply-shift (bias below 2^-40 for the ranges
  // the generators use).
  int64_t Uniform(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    if (span == 0) return static_cast<int64_t>(Next());  // the whole 64-bit range
    return lo + static_cast<int64_t>((static_cast<unsigned __int128>(Next()) * span) >> 64);
  }

 private:
  uint64_t state_;
};

// One 64-bit value from several, each through a generator step, so nearby inputs give unrelated
// streams.
inline uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c) {
  return Rng(Rng(Rng(a).Next() ^ b).Next() ^ c).Next();
}

}  // namespace scalelab::tasks::internal

#endif  // SCALELAB_TASKS_INTERNAL_RNG_H_
