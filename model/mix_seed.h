// SplitMix64's finalizer as a seed mixer: one user seed and an index (a prompt, an epoch, a step)
// give decorrelated streams. Torch-free.

#ifndef SCALELAB_MODEL_MIX_SEED_H_
#define SCALELAB_MODEL_MIX_SEED_H_

#include <cstdint>

namespace scalelab::model {

inline uint64_t MixSeed(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_MIX_SEED_H_
