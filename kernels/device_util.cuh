// Device helpers shared by the kernels in this folder: warp reductions and fp32 <-> bf16
// conversion, so each kernel can be written once as a template over its storage type and always
// compute in fp32.

#ifndef SCALELAB_KERNELS_DEVICE_UTIL_CUH_
#define SCALELAB_KERNELS_DEVICE_UTIL_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace scalelab::kernels {

constexpr int kWarpSize = 32;

__device__ __forceinline__ float WarpSum(float value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  }
  return value;  // Every lane holds the full sum (butterfly reduction).
}

__device__ __forceinline__ float ToFloat(float value) { return value; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 value) { return __bfloat162float(value); }

template <typename T>
__device__ __forceinline__ T FromFloat(float value);
template <>
__device__ __forceinline__ float FromFloat<float>(float value) {
  return value;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float value) {
  return __float2bfloat16(value);  // Round to nearest even.
}

// A launcher called with an impossible shape is a caller bug (shapes come from tensors the caller
// built), not input to recover from: report it with file:line and abort.
#define SCALELAB_KERNEL_REQUIRE(condition, ...)                                                 \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "%s:%d: %s: requirement failed: %s: ", __FILE__, __LINE__, __func__, \
                   #condition);                                                                 \
      std::fprintf(stderr, __VA_ARGS__);                                                        \
      std::fprintf(stderr, "\n");                                                               \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)

}  // namespace scalelab::kernels

#endif  // SCALELAB_KERNELS_DEVICE_UTIL_CUH_
