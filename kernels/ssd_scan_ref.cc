#include "kernels/ssd_scan_ref.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace scalelab::kernels {
namespace {

// Index helpers for the layouts of kernels/ssd_scan.cuh.
struct Index {
  const SsdShape& s;
  size_t X(int b, int t, int h, int p) const {
    return ((static_cast<size_t>(b) * s.seq + t) * s.heads + h) * s.head_dim + p;
  }
  size_t Dt(int b, int t, int h) const {
    return (static_cast<size_t>(b) * s.seq + t) * s.heads + h;
  }
  size_t Bc(int b, int t, int n) const {
    return (static_cast<size_t>(b) * s.seq + t) * s.d_state + n;
  }
  size_t ChunkState(int b, int k, int h, int p, int n) const {
    return (((static_cast<size_t>(b) * s.NumChunks() + k) * s.heads + h) * s.head_dim + p) *
               s.d_state +
           n;
  }
  size_t State(int b, int h, int p, int n) const {
    return ((static_cast<size_t>(b) * s.heads + h) * s.head_dim + p) * s.d_state + n;
  }
};

// cum[i] = sum_{j <= i} dt a over the chunk starting at `first`.
std::vector<double> ChunkCumsum(const float* dt, const float* a, const Index& index, int b, int h,
                                int first, int length) {
  std::vector<double> cum(length);
  double total = 0;
  for (int i = 0; i < length; ++i) {
    total += static_cast<double>(dt[index.Dt(b, first + i, h)]) * a[h];
    cum[i] = total;
  }
  return cum;
}

}  // namespace

void SsdChunkScanRef(float* y, float* chunk_states, const float* x, const float* dt, const float* a,
                     const float* b, const float* c, const SsdShape& shape) {
  const Index index{shape};
  for (int batch = 0; batch < shape.batch; ++batch) {
    for (int k = 0; k < shape.NumChunks(); ++k) {
      const int first = k * shape.chunk;
      const int length = std::min(shape.chunk, shape.seq - first);
      for (int h = 0; h < shape.heads; ++h) {
        const std::vector<double> cum = ChunkCumsum(dt, a, index, batch, h, first, length);
        for (int t = 0; t < length; ++t) {
          for (int p = 0; p < shape.head_dim; ++p) {
            double sum = 0;
            for (int s = 0; s <= t; ++s) {
              double cb = 0;
              for (int n = 0; n < shape.d_state; ++n) {
                cb += static_cast<double>(c[index.Bc(batch, first + t, n)]) *
                      b[index.Bc(batch, first + s, n)];
              }
              sum += cb * std::exp(cum[t] - cum[s]) * dt[index.Dt(batch, first + s, h)] *
                     x[index.X(batch, first + s, h, p)];
            }
            y[index.X(batch, first + t, h, p)] = static_cast<float>(sum);
          }
        }
        for (int p = 0; p < shape.head_dim; ++p) {
          for (int n = 0; n < shape.d_state; ++n) {
            double sum = 0;
            for (int s = 0; s < length; ++s) {
              sum += std::exp(cum[length - 1] - cum[s]) * dt[index.Dt(batch, first + s, h)] *
                     x[index.X(batch, first + s, h, p)] * b[index.Bc(batch, first + s, n)];
            }
            chunk_states[index.ChunkState(batch, k, h, p, n)] = static_cast<float>(sum);
          }
        }
      }
    }
  }
}

void SsdChunkCombineRef(float* y, float* final_state, const float* chunk_states,
                        const float* initial_state, const float* dt, const float* a, const float* c,
                        const SsdShape& shape) {
  const Index index{shape};
  const size_t state_size = static_cast<size_t>(shape.head_dim) * shape.d_state;
  std::vector<double> state(state_size);
  for (int batch = 0; batch < shape.batch; ++batch) {
    for (int h = 0; h < shape.heads; ++h) {
      for (int p = 0; p < shape.head_dim; ++p) {
        for (int n = 0; n < shape.d_state; ++n) {
          state[static_cast<size_t>(p) * shape.d_state + n] =
              initial_state == nullptr ? 0.0 : initial_state[index.State(batch, h, p, n)];
        }
      }
      for (int k = 0; k < shape.NumChunks(); ++k) {
        const int first = k * shape.chunk;
        const int length = std::min(shape.chunk, shape.seq - first);
        const std::vector<double> cum = ChunkCumsum(dt, a, index, batch, h, first, length);
        for (int t = 0; t < length; ++t) {
          const double decay = std::exp(cum[t]);
          for (int p = 0; p < shape.head_dim; ++p) {
            double dot = 0;
            for (int n = 0; n < shape.d_state; ++n) {
              dot += static_cast<double>(c[index.Bc(batch, first + t, n)]) *
                     state[static_cast<size_t>(p) * shape.d_state + n];
            }
            const size_t out = index.X(batch, first + t, h, p);
            y[out] = static_cast<float>(y[out] + decay * dot);
          }
        }
        const double chunk_decay = std::exp(cum[length - 1]);
        for (int p = 0; p < shape.head_dim; ++p) {
          for (int n = 0; n < shape.d_state; ++n) {
            double& entry = state[static_cast<size_t>(p) * shape.d_state + n];
            entry = chunk_decay * entry + chunk_states[index.ChunkState(batch, k, h, p, n)];
          }
        }
      }
      if (final_state == nullptr) continue;
      for (int p = 0; p < shape.head_dim; ++p) {
        for (int n = 0; n < shape.d_state; ++n) {
          final_state[index.State(batch, h, p, n)] =
              static_cast<float>(state[static_cast<size_t>(p) * shape.d_state + n]);
        }
      }
    }
  }
}

}  // namespace scalelab::kernels
