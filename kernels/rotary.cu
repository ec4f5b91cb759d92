#include "kernels/cuda_check.cuh"
#include "kernels/device_util.cuh"
#include "kernels/rotary.cuh"

namespace scalelab::kernels {
namespace {

constexpr int kBlockSize = 256;

template <typename T>
__global__ void RotaryKernel(T* out, const T* x, const float* __restrict__ cos,
                             const float* __restrict__ sin, long long pairs, int seq, int half,
                             float sign) {
  const long long idx = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= pairs) return;
  const int pair = static_cast<int>(idx % half);
  const long long row_position = idx / half;  // row * seq + position
  const int position = static_cast<int>(row_position % seq);
  const long long base = row_position * (2LL * half);
  // Both halves are read before either is written, so out may alias x.
  const float x1 = ToFloat(x[base + pair]);
  const float x2 = ToFloat(x[base + pair + half]);
  const float c = cos[static_cast<long long>(position) * half + pair];
  const float s = sign * sin[static_cast<long long>(position) * half + pair];
  out[base + pair] = FromFloat<T>(x1 * c - x2 * s);
  out[base + pair + half] = FromFloat<T>(x2 * c + x1 * s);
}

template <typename T>
void Launch(T* out, const T* x, const float* cos, const float* sin, int rows, int seq, int head_dim,
            bool inverse, cudaStream_t stream) {
  SCALELAB_KERNEL_REQUIRE(rows >= 0 && seq >= 0 && head_dim >= 2 && head_dim % 2 == 0,
                          "rows=%d seq=%d head_dim=%d", rows, seq, head_dim);
  const int half = head_dim / 2;
  const long long pairs = static_cast<long long>(rows) * seq * half;
  if (pairs == 0) return;
  const long long blocks = (pairs + kBlockSize - 1) / kBlockSize;
  SCALELAB_KERNEL_REQUIRE(blocks <= 0x7fffffffLL, "pairs=%lld", pairs);
  RotaryKernel<T><<<static_cast<unsigned>(blocks), kBlockSize, 0, stream>>>(
      out, x, cos, sin, pairs, seq, half, inverse ? -1.0f : 1.0f);
  SCALELAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void Rotary(float* out, const float* x, const float* cos, const float* sin, int rows, int seq,
            int head_dim, bool inverse, cudaStream_t stream) {
  Launch(out, x, cos, sin, rows, seq, head_dim, inverse, stream);
}

void Rotary(__nv_bfloat16* out, const __nv_bfloat16* x, const float* cos, const float* sin,
            int rows, int seq, int head_dim, bool inverse, cudaStream_t stream) {
  Launch(out, x, cos, sin, rows, seq, head_dim, inverse, stream);
}

}  // namespace scalelab::kernels
