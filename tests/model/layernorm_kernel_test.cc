#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/cuda_check.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/layernorm_ref.h"

namespace scalelab::kernels {
namespace {

// fp32 tolerance as llm.c uses for fp32 kernels; the absolute floor covers outputs near zero,
// where any relative bound is meaningless.
constexpr double kRelTol = 1e-4;
constexpr double kAbsTol = 1e-5;

bool HaveCudaDevice() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) cudaGetLastError();  // Reset it so later calls do not report it.
  return error == cudaSuccess && count > 0;
}

// A device copy of a host vector, freed on scope exit.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    SCALELAB_CUDA_CHECK(cudaMalloc(&data_, count * sizeof(float)));
  }
  explicit DeviceBuffer(const std::vector<float>& host) : DeviceBuffer(host.size()) {
    SCALELAB_CUDA_CHECK(
        cudaMemcpy(data_, host.data(), count_ * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  float* get() const { return data_; }
  std::vector<float> ToHost() const {
    std::vector<float> host(count_);
    SCALELAB_CUDA_CHECK(
        cudaMemcpy(host.data(), data_, count_ * sizeof(float), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  float* data_ = nullptr;
  size_t count_;
};

void CheckClose(const std::vector<float>& gpu, const std::vector<float>& ref, const char* what) {
  REQUIRE(gpu.size() == ref.size());
  size_t mismatches = 0;
  for (size_t idx = 0; idx < ref.size(); ++idx) {
    const double error = std::fabs(static_cast<double>(gpu[idx]) - ref[idx]);
    if (error > kAbsTol + kRelTol * std::fabs(ref[idx])) {
      if (mismatches++ < 5) {
        UNSCOPED_INFO(what << "[" << idx << "]: gpu " << gpu[idx] << " vs reference " << ref[idx]);
      }
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("The CUDA LayerNorm matches the CPU reference at rtol 1e-4", "[kernels][gpu]") {
  if (!HaveCudaDevice()) {
    WARN("skipping: no CUDA device (cudaGetDeviceCount failed or found none)");
    return;
  }
  std::mt19937 rng(42);
  // Widths below, at and above a warp, odd ones, and GPT-2 sizes; a large offset in x exercises
  // the two-pass variance.
  const int shapes[][2] = {{1, 1}, {3, 31}, {7, 64}, {33, 129}, {1000, 768}, {64, 4096}};
  for (const auto& shape : shapes) {
    const int rows = shape[0];
    const int cols = shape[1];
    INFO("rows=" << rows << " cols=" << cols);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(rows) * cols);
    for (float& value : x) value = 3.0f + 2.0f * normal(rng);
    std::vector<float> weight(cols);
    std::vector<float> bias(cols);
    for (float& value : weight) value = 1.0f + 0.1f * normal(rng);
    for (float& value : bias) value = 0.1f * normal(rng);

    std::vector<float> ref_out(x.size());
    std::vector<float> ref_mean(rows);
    std::vector<float> ref_rstd(rows);
    LayerNormForwardRef(ref_out.data(), ref_mean.data(), ref_rstd.data(), x.data(), weight.data(),
                        bias.data(), rows, cols, 1e-5f);

    DeviceBuffer d_x(x);
    DeviceBuffer d_weight(weight);
    DeviceBuffer d_bias(bias);
    DeviceBuffer d_out(x.size());
    DeviceBuffer d_mean(rows);
    DeviceBuffer d_rstd(rows);
    LayerNormForward(d_out.get(), d_mean.get(), d_rstd.get(), d_x.get(), d_weight.get(),
                     d_bias.get(), rows, cols, 1e-5f, /*stream=*/nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());

    CheckClose(d_out.ToHost(), ref_out, "out");
    CheckClose(d_mean.ToHost(), ref_mean, "mean");
    CheckClose(d_rstd.ToHost(), ref_rstd, "rstd");
  }
}

}  // namespace
}  // namespace scalelab::kernels
