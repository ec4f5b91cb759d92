#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda_check.cuh"
#include "kernels/rotary.cuh"
#include "kernels/rotary_ref.h"
#include "tests/model/kernel_test_support.h"

namespace scalelab::kernels {
namespace {

using testing::CheckClose;
using testing::DeviceBuffer;
using testing::RandomNormal;

// rows (batch * heads), seq, head_dim.
constexpr int kShapes[][3] = {{1, 1, 2}, {3, 17, 8}, {8, 128, 64}, {32, 257, 128}};

void Tables(int seq, int head_dim, std::vector<float>* cos, std::vector<float>* sin) {
  const int half = head_dim / 2;
  cos->resize(static_cast<size_t>(seq) * half);
  sin->resize(cos->size());
  for (int position = 0; position < seq; ++position) {
    for (int pair = 0; pair < half; ++pair) {
      const double angle = position * std::pow(10000.0, -2.0 * pair / head_dim);
      (*cos)[position * half + pair] = static_cast<float>(std::cos(angle));
      (*sin)[position * half + pair] = static_cast<float>(std::sin(angle));
    }
  }
}

TEST_CASE("The CUDA rotary embedding and its inverse match the CPU reference at rtol 1e-4",
          "[kernels][gpu]") {
  SCALELAB_SKIP_WITHOUT_GPU();
  std::mt19937 rng(42);
  for (const auto& shape : kShapes) {
    const int rows = shape[0], seq = shape[1], head_dim = shape[2];
    INFO("rows=" << rows << " seq=" << seq << " head_dim=" << head_dim);
    std::vector<float> cos, sin;
    Tables(seq, head_dim, &cos, &sin);
    const std::vector<float> x =
        RandomNormal(static_cast<size_t>(rows) * seq * head_dim, 0.0f, 1.0f, rng);
    DeviceBuffer<float> d_x(x), d_cos(cos), d_sin(sin), d_out(x.size());
    for (const bool inverse : {false, true}) {
      std::vector<float> ref(x.size());
      RotaryRef(ref.data(), x.data(), cos.data(), sin.data(), rows, seq, head_dim, inverse);
      Rotary(d_out.get(), d_x.get(), d_cos.get(), d_sin.get(), rows, seq, head_dim, inverse,
             nullptr);
      SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
      CheckClose(d_out.ToHost(), ref, 1e-4, 1e-5, inverse ? "inverse" : "forward");
    }
    // In place, bf16: the reference sees the bf16-rounded inputs.
    const auto x_bf16 = testing::ToBf16(x);
    std::vector<float> ref(x.size());
    RotaryRef(ref.data(), testing::ToFloat(x_bf16).data(), cos.data(), sin.data(), rows, seq,
              head_dim, false);
    DeviceBuffer<__nv_bfloat16> d_bf16(x_bf16);
    Rotary(d_bf16.get(), d_bf16.get(), d_cos.get(), d_sin.get(), rows, seq, head_dim, false,
           nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
    CheckClose(testing::ToFloat(d_bf16.ToHost()), ref, 1e-2, 1e-2, "bf16 in place");
  }
}

}  // namespace
}  // namespace scalelab::kernels
