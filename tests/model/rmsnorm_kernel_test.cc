#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/cuda_check.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/rmsnorm_ref.h"
#include "tests/model/kernel_test_support.h"

namespace scalelab::kernels {
namespace {

using testing::CheckClose;
using testing::DeviceBuffer;
using testing::RandomNormal;

// Widths below, at and above a warp, odd ones and model sizes; a row count above one dweight
// chunk (256 rows) exercises the two-pass dweight sum.
constexpr int kShapes[][2] = {{1, 1}, {3, 31}, {7, 64}, {33, 129}, {1000, 768}, {64, 4096}};

TEST_CASE("The CUDA RMSNorm forward and backward match the CPU reference at rtol 1e-4",
          "[kernels][gpu]") {
  SCALELAB_SKIP_WITHOUT_GPU();
  std::mt19937 rng(42);
  for (const auto& shape : kShapes) {
    const int rows = shape[0], cols = shape[1];
    INFO("rows=" << rows << " cols=" << cols);
    const std::vector<float> x = RandomNormal(static_cast<size_t>(rows) * cols, 0.5f, 2.0f, rng);
    const std::vector<float> weight = RandomNormal(cols, 1.0f, 0.1f, rng);
    const std::vector<float> dout = RandomNormal(x.size(), 0.0f, 1.0f, rng);
    std::vector<float> ref_out(x.size()), ref_rstd(rows), ref_dx(x.size()), ref_dweight(cols);
    RmsNormForwardRef(ref_out.data(), ref_rstd.data(), x.data(), weight.data(), rows, cols, 1e-5f);
    RmsNormBackwardRef(ref_dx.data(), ref_dweight.data(), dout.data(), x.data(), weight.data(),
                       rows, cols, 1e-5f);

    DeviceBuffer<float> d_x(x), d_weight(weight), d_dout(dout);
    DeviceBuffer<float> d_out(x.size()), d_rstd(rows), d_dx(x.size()), d_dweight(cols);
    RmsNormForward(d_out.get(), d_rstd.get(), d_x.get(), d_weight.get(), rows, cols, 1e-5f,
                   nullptr);
    RmsNormBackward(d_dx.get(), d_dweight.get(), d_dout.get(), d_x.get(), d_weight.get(),
                    d_rstd.get(), rows, cols, nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
    CheckClose(d_out.ToHost(), ref_out, 1e-4, 1e-5, "out");
    CheckClose(d_rstd.ToHost(), ref_rstd, 1e-4, 1e-5, "rstd");
    CheckClose(d_dx.ToHost(), ref_dx, 1e-4, 1e-4, "dx");
    // dweight sums up to 1000 rows in fp32: the absolute floor grows with the row count.
    CheckClose(d_dweight.ToHost(), ref_dweight, 1e-4, 1e-6 * rows, "dweight");
  }
}

TEST_CASE("The bf16 CUDA RMSNorm matches the reference on bf16-rounded inputs at rel 1e-2",
          "[kernels][gpu]") {
  SCALELAB_SKIP_WITHOUT_GPU();
  std::mt19937 rng(43);
  for (const auto& shape : kShapes) {
    const int rows = shape[0], cols = shape[1];
    INFO("rows=" << rows << " cols=" << cols);
    // The reference sees exactly the values the kernel sees: the inputs rounded to bf16.
    const auto x = testing::ToBf16(RandomNormal(static_cast<size_t>(rows) * cols, 0.5f, 2.0f, rng));
    const auto weight = testing::ToBf16(RandomNormal(cols, 1.0f, 0.1f, rng));
    std::vector<float> ref_out(x.size());
    RmsNormForwardRef(ref_out.data(), nullptr, testing::ToFloat(x).data(),
                      testing::ToFloat(weight).data(), rows, cols, 1e-5f);
    DeviceBuffer<__nv_bfloat16> d_x(x), d_weight(weight), d_out(x.size());
    RmsNormForward(d_out.get(), nullptr, d_x.get(), d_weight.get(), rows, cols, 1e-5f, nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
    // One bf16 rounding of the output is 2^-9 relative; 1e-2 leaves room for fp32 sums.
    CheckClose(testing::ToFloat(d_out.ToHost()), ref_out, 1e-2, 1e-2, "out");
  }
}

}  // namespace
}  // namespace scalelab::kernels
