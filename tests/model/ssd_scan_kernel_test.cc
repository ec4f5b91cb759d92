#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda_check.cuh"
#include "kernels/ssd_scan.cuh"
#include "kernels/ssd_scan_ref.h"
#include "tests/model/kernel_test_support.h"

namespace scalelab::kernels {
namespace {

using testing::CheckClose;
using testing::DeviceBuffer;
using testing::RandomNormal;

double MaxAbs(const std::vector<float>& values) {
  double max = 0;
  for (float value : values) max = std::max(max, std::fabs(static_cast<double>(value)));
  return max;
}

TEST_CASE("The CUDA SSD chunk scan and combine match the CPU reference at rtol 1e-4",
          "[kernels][gpu]") {
  SCALELAB_SKIP_WITHOUT_GPU();
  // A ragged last chunk, a single chunk, and Mamba-2 sizes (P 64, N 128: 32 KiB of state).
  const SsdShape shapes[] = {
      {2, 100, 3, 8, 16, 32}, {1, 64, 2, 16, 16, 64}, {1, 300, 4, 64, 128, 64}};
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  for (const SsdShape& shape : shapes) {
    INFO("batch=" << shape.batch << " seq=" << shape.seq << " heads=" << shape.heads << " head_dim="
                  << shape.head_dim << " d_state=" << shape.d_state << " chunk=" << shape.chunk);
    const size_t tokens = static_cast<size_t>(shape.batch) * shape.seq;
    const size_t state_size =
        static_cast<size_t>(shape.batch) * shape.heads * shape.head_dim * shape.d_state;
    const std::vector<float> x = RandomNormal(tokens * shape.heads * shape.head_dim, 0, 1, rng);
    std::vector<float> dt(tokens * shape.heads), a(shape.heads);
    for (float& value : dt) value = 0.01f + 0.2f * uniform(rng);
    for (float& value : a) value = -std::exp(2.0f * uniform(rng) - 1.0f);
    const std::vector<float> b = RandomNormal(tokens * shape.d_state, 0, 0.3f, rng);
    const std::vector<float> c = RandomNormal(tokens * shape.d_state, 0, 0.3f, rng);
    const std::vector<float> initial = RandomNormal(state_size, 0, 1, rng);
    const size_t chunk_states_size = state_size * shape.NumChunks();

    std::vector<float> ref_y(x.size()), ref_chunks(chunk_states_size), ref_final(state_size);
    SsdChunkScanRef(ref_y.data(), ref_chunks.data(), x.data(), dt.data(), a.data(), b.data(),
                    c.data(), shape);
    const std::vector<float> ref_intra = ref_y;
    SsdChunkCombineRef(ref_y.data(), ref_final.data(), ref_chunks.data(), initial.data(), dt.data(),
                       a.data(), c.data(), shape);

    DeviceBuffer<float> d_x(x), d_dt(dt), d_a(a), d_b(b), d_c(c), d_initial(initial);
    DeviceBuffer<float> d_y(x.size()), d_chunks(chunk_states_size), d_final(state_size);
    SsdChunkScan(d_y.get(), d_chunks.get(), d_x.get(), d_dt.get(), d_a.get(), d_b.get(), d_c.get(),
                 shape, nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
    // Sums of up to chunk * d_state products: the absolute floor is relative to the output scale.
    CheckClose(d_y.ToHost(), ref_intra, 1e-4, 1e-5 * MaxAbs(ref_intra), "intra-chunk y");
    CheckClose(d_chunks.ToHost(), ref_chunks, 1e-4, 1e-5 * MaxAbs(ref_chunks), "chunk states");
    SsdChunkCombine(d_y.get(), d_final.get(), d_chunks.get(), d_initial.get(), d_dt.get(),
                    d_a.get(), d_c.get(), shape, nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
    CheckClose(d_y.ToHost(), ref_y, 1e-4, 1e-5 * MaxAbs(ref_y), "y");
    CheckClose(d_final.ToHost(), ref_final, 1e-4, 1e-5 * MaxAbs(ref_final), "final state");
  }
}

}  // namespace
}  // namespace scalelab::kernels
