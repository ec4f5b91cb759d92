#include "kernels/ssd_scan_ref.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

namespace scalelab::kernels {
namespace {

struct ScanInputs {
  std::vector<float> x, dt, a, b, c, initial_state;
};

ScanInputs RandomInputs(const SsdShape& shape, bool with_initial_state, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  ScanInputs in;
  const size_t tokens = static_cast<size_t>(shape.batch) * shape.seq;
  in.x.resize(tokens * shape.heads * shape.head_dim);
  in.dt.resize(tokens * shape.heads);
  in.a.resize(shape.heads);
  in.b.resize(tokens * shape.d_state);
  in.c.resize(tokens * shape.d_state);
  for (float& value : in.x) value = normal(rng);
  for (float& value : in.dt) value = 0.01f + 0.2f * uniform(rng);
  for (float& value : in.a) value = -std::exp(normal(rng));
  for (float& value : in.b) value = 0.5f * normal(rng);
  for (float& value : in.c) value = 0.5f * normal(rng);
  if (with_initial_state) {
    in.initial_state.resize(static_cast<size_t>(shape.batch) * shape.heads * shape.head_dim *
                            shape.d_state);
    for (float& value : in.initial_state) value = normal(rng);
  }
  return in;
}

// The recurrence itself, token by token in double: h = exp(dt a) h + dt x B^T, y = C . h.
void Sequential(const SsdShape& s, const ScanInputs& in, std::vector<double>* y,
                std::vector<double>* final_state) {
  y->assign(in.x.size(), 0.0);
  final_state->assign(static_cast<size_t>(s.batch) * s.heads * s.head_dim * s.d_state, 0.0);
  for (int b = 0; b < s.batch; ++b) {
    for (int h = 0; h < s.heads; ++h) {
      const size_t state0 = (static_cast<size_t>(b) * s.heads + h) * s.head_dim * s.d_state;
      std::vector<double> state(static_cast<size_t>(s.head_dim) * s.d_state, 0.0);
      if (!in.initial_state.empty()) {
        for (size_t idx = 0; idx < state.size(); ++idx) state[idx] = in.initial_state[state0 + idx];
      }
      for (int t = 0; t < s.seq; ++t) {
        const size_t token = static_cast<size_t>(b) * s.seq + t;
        const double dt = in.dt[token * s.heads + h];
        const double decay = std::exp(dt * in.a[h]);
        for (int p = 0; p < s.head_dim; ++p) {
          const double xv = in.x[(token * s.heads + h) * s.head_dim + p];
          double out = 0;
          for (int n = 0; n < s.d_state; ++n) {
            double& entry = state[static_cast<size_t>(p) * s.d_state + n];
            entry = decay * entry + dt * xv * in.b[token * s.d_state + n];
            out += in.c[token * s.d_state + n] * entry;
          }
          (*y)[(token * s.heads + h) * s.head_dim + p] = out;
        }
      }
      for (size_t idx = 0; idx < state.size(); ++idx) (*final_state)[state0 + idx] = state[idx];
    }
  }
}

void CheckChunkedMatchesSequential(const SsdShape& shape, bool with_initial_state) {
  INFO("batch=" << shape.batch << " seq=" << shape.seq << " heads=" << shape.heads
                << " head_dim=" << shape.head_dim << " d_state=" << shape.d_state
                << " chunk=" << shape.chunk << " initial_state=" << with_initial_state);
  const ScanInputs in = RandomInputs(shape, with_initial_state, 5);
  std::vector<float> y(in.x.size());
  std::vector<float> chunk_states(static_cast<size_t>(shape.batch) * shape.NumChunks() *
                                  shape.heads * shape.head_dim * shape.d_state);
  std::vector<float> final_state(static_cast<size_t>(shape.batch) * shape.heads * shape.head_dim *
                                 shape.d_state);
  SsdChunkScanRef(y.data(), chunk_states.data(), in.x.data(), in.dt.data(), in.a.data(),
                  in.b.data(), in.c.data(), shape);
  SsdChunkCombineRef(y.data(), final_state.data(), chunk_states.data(),
                     with_initial_state ? in.initial_state.data() : nullptr, in.dt.data(),
                     in.a.data(), in.c.data(), shape);
  std::vector<double> expected_y, expected_state;
  Sequential(shape, in, &expected_y, &expected_state);
  for (size_t idx = 0; idx < y.size(); ++idx) {
    CHECK(y[idx] == Approx(expected_y[idx]).epsilon(1e-5).margin(1e-5));
  }
  for (size_t idx = 0; idx < final_state.size(); ++idx) {
    CHECK(final_state[idx] == Approx(expected_state[idx]).epsilon(1e-5).margin(1e-5));
  }
}

TEST_CASE("The chunked SSD reference equals the token-by-token recurrence", "[kernels]") {
  // Chunks that divide the sequence, a ragged last chunk, one chunk for all, one token per chunk.
  CheckChunkedMatchesSequential({2, 16, 2, 3, 4, 4}, false);
  CheckChunkedMatchesSequential({1, 19, 3, 4, 5, 8}, true);
  CheckChunkedMatchesSequential({1, 12, 1, 2, 3, 64}, true);
  CheckChunkedMatchesSequential({2, 7, 2, 2, 2, 1}, false);
}

TEST_CASE("The SSD reference passes the initial state through an empty sequence", "[kernels]") {
  const SsdShape shape{1, 0, 2, 2, 3, 4};
  const ScanInputs in = RandomInputs(shape, true, 9);
  std::vector<float> final_state(in.initial_state.size());
  SsdChunkCombineRef(nullptr, final_state.data(), nullptr, in.initial_state.data(), nullptr,
                     in.a.data(), nullptr, shape);
  CHECK(final_state == in.initial_state);
}

}  // namespace
}  // namespace scalelab::kernels
