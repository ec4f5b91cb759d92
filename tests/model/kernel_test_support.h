// Shared by the GPU-vs-reference kernel tests: device detection (tests skip cleanly without a
// GPU), a typed device buffer, random inputs and the tolerance check.

#ifndef SCALELAB_TESTS_MODEL_KERNEL_TEST_SUPPORT_H_
#define SCALELAB_TESTS_MODEL_KERNEL_TEST_SUPPORT_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <random>
#include <vector>

#include "kernels/cuda_check.cuh"

namespace scalelab::kernels::testing {

inline bool HaveCudaDevice() {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) cudaGetLastError();  // Reset it so later calls do not report it.
  return error == cudaSuccess && count > 0;
}

// The message ctest's SKIP_REGULAR_EXPRESSION looks for (tests/model/CMakeLists.txt).
#define SCALELAB_SKIP_WITHOUT_GPU()                                               \
  do {                                                                            \
    if (!::scalelab::kernels::testing::HaveCudaDevice()) {                        \
      WARN("skipping: no CUDA device (cudaGetDeviceCount failed or found none)"); \
      return;                                                                     \
    }                                                                             \
  } while (0)

// A device array of T, freed on scope exit.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    SCALELAB_CUDA_CHECK(cudaMalloc(&data_, (count == 0 ? 1 : count) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    SCALELAB_CUDA_CHECK(cudaMemcpy(data_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { cudaFree(data_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }
  std::vector<T> ToHost() const {
    std::vector<T> host(count_);
    SCALELAB_CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t count_;
};

inline std::vector<float> RandomNormal(size_t count, float mean, float stddev, std::mt19937& rng) {
  std::normal_distribution<float> normal(mean, stddev);
  std::vector<float> values(count);
  for (float& value : values) value = normal(rng);
  return values;
}

inline std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& values) {
  std::vector<__nv_bfloat16> out(values.size());
  for (size_t idx = 0; idx < values.size(); ++idx) out[idx] = __float2bfloat16(values[idx]);
  return out;
}

inline std::vector<float> ToFloat(const std::vector<__nv_bfloat16>& values) {
  std::vector<float> out(values.size());
  for (size_t idx = 0; idx < values.size(); ++idx) out[idx] = __bfloat162float(values[idx]);
  return out;
}

// Every |gpu - ref| <= abs_tol + rel_tol * |ref|; reports the first five violations, and always
// the measured worst case as a warning line "measured <what> max_abs_error=... worst_ratio=..."
// (worst_ratio: the largest error / allowed error; at most 1 passes), which bench/gpu/run.sh
// collects from the log of a GPU run.
inline void CheckClose(const std::vector<float>& gpu, const std::vector<float>& ref, double rel_tol,
                       double abs_tol, const char* what) {
  REQUIRE(gpu.size() == ref.size());
  size_t mismatches = 0;
  double max_abs_error = 0;
  double worst_ratio = 0;
  for (size_t idx = 0; idx < ref.size(); ++idx) {
    const double error = std::fabs(static_cast<double>(gpu[idx]) - ref[idx]);
    const double allowed = abs_tol + rel_tol * std::fabs(ref[idx]);
    max_abs_error = std::max(max_abs_error, error);
    worst_ratio = std::max(worst_ratio, allowed > 0 ? error / allowed : error);
    if (!(error <= allowed)) {
      if (mismatches++ < 5) {
        UNSCOPED_INFO(what << "[" << idx << "]: gpu " << gpu[idx] << " vs reference " << ref[idx]);
      }
    }
  }
  WARN("measured " << what << " max_abs_error=" << max_abs_error << " worst_ratio=" << worst_ratio
                   << " rel_tol=" << rel_tol << " abs_tol=" << abs_tol);
  CHECK(mismatches == 0);
}

}  // namespace scalelab::kernels::testing

#endif  // SCALELAB_TESTS_MODEL_KERNEL_TEST_SUPPORT_H_
