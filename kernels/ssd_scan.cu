#include "kernels/cuda_check.cuh"
#include "kernels/device_util.cuh"
#include "kernels/ssd_scan.cuh"

namespace scalelab::kernels {
namespace {

constexpr int kBlockSize = 128;
// Above this much dynamic shared memory a kernel must opt in (cudaFuncSetAttribute).
constexpr size_t kDefaultSharedBytes = 48 * 1024;

__device__ __forceinline__ void ChunkCumsum(float* cum, float* dts, const float* dt, float a,
                                            long long dt_base, long long dt_stride, int length) {
  // One thread: a chunk is at most 1024 tokens and this is a small part of the block's work, and
  // a sequential sum in fixed order is what the reference computes too.
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int i = 0; i < length; ++i) {
      dts[i] = dt[dt_base + i * dt_stride];
      total += dts[i] * a;
      cum[i] = total;
    }
  }
  __syncthreads();
}

// One block per (chunk, head, batch).
__global__ void SsdChunkScanKernel(float* __restrict__ y, float* __restrict__ chunk_states,
                                   const float* __restrict__ x, const float* __restrict__ dt,
                                   const float* __restrict__ a, const float* __restrict__ b,
                                   const float* __restrict__ c, SsdShape shape) {
  extern __shared__ float shared[];
  const int k = blockIdx.x;
  const int h = blockIdx.y;
  const int batch = blockIdx.z;
  const int chunk = shape.chunk;
  const int first = k * chunk;
  const int length = min(chunk, shape.seq - first);
  const int P = shape.head_dim;
  const int N = shape.d_state;
  float* cum = shared;
  float* dts = shared + chunk;
  float* weight = shared + 2 * chunk;

  const long long token0 = static_cast<long long>(batch) * shape.seq + first;
  const long long x_token = static_cast<long long>(shape.heads) * P;
  const float* x0 = x + token0 * x_token + static_cast<long long>(h) * P;  // x[b, first, h, 0]
  float* y0 = y + token0 * x_token + static_cast<long long>(h) * P;
  const float* b0 = b + token0 * N;
  const float* c0 = c + token0 * N;
  ChunkCumsum(cum, dts, dt, a[h], token0 * shape.heads + h, shape.heads, length);

  for (int t = 0; t < length; ++t) {
    // weight[s] = (C_t . B_s) exp(cum_t - cum_s) dt_s: row t of the chunk's masked SSD matrix.
    for (int s = threadIdx.x; s <= t; s += blockDim.x) {
      float cb = 0.0f;
      for (int n = 0; n < N; ++n)
        cb += c0[static_cast<long long>(t) * N + n] * b0[static_cast<long long>(s) * N + n];
      weight[s] = cb * expf(cum[t] - cum[s]) * dts[s];
    }
    __syncthreads();
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
      float sum = 0.0f;
      for (int s = 0; s <= t; ++s) sum += weight[s] * x0[s * x_token + p];
      y0[t * x_token + p] = sum;
    }
    __syncthreads();  // weight is rewritten for the next t.
  }

  const long long states_base =
      ((static_cast<long long>(batch) * shape.NumChunks() + k) * shape.heads + h) * P * N;
  for (int entry = threadIdx.x; entry < P * N; entry += blockDim.x) {
    const int p = entry / N;
    const int n = entry % N;
    float sum = 0.0f;
    for (int s = 0; s < length; ++s) {
      sum += expf(cum[length - 1] - cum[s]) * dts[s] * x0[s * x_token + p] *
             b0[static_cast<long long>(s) * N + n];
    }
    chunk_states[states_base + entry] = sum;
  }
}

// One block per (head, batch): walks the chunks in order carrying the state in shared memory.
__global__ void SsdChunkCombineKernel(float* __restrict__ y, float* __restrict__ final_state,
                                      const float* __restrict__ chunk_states,
                                      const float* __restrict__ initial_state,
                                      const float* __restrict__ dt, const float* __restrict__ a,
                                      const float* __restrict__ c, SsdShape shape) {
  extern __shared__ float shared[];
  const int h = blockIdx.x;
  const int batch = blockIdx.y;
  const int P = shape.head_dim;
  const int N = shape.d_state;
  const int chunk = shape.chunk;
  float* state = shared;  // [P, N]
  float* cum = shared + P * N;
  float* dts = cum + chunk;
  const long long state_base = (static_cast<long long>(batch) * shape.heads + h) * P * N;
  for (int entry = threadIdx.x; entry < P * N; entry += blockDim.x) {
    state[entry] = initial_state == nullptr ? 0.0f : initial_state[state_base + entry];
  }
  const long long x_token = static_cast<long long>(shape.heads) * P;
  for (int k = 0; k < shape.NumChunks(); ++k) {
    const int first = k * chunk;
    const int length = min(chunk, shape.seq - first);
    const long long token0 = static_cast<long long>(batch) * shape.seq + first;
    // Also orders the state initialization / last update before the reads below.
    ChunkCumsum(cum, dts, dt, a[h], token0 * shape.heads + h, shape.heads, length);
    float* y0 = y + token0 * x_token + static_cast<long long>(h) * P;
    const float* c0 = c + token0 * N;
    for (int entry = threadIdx.x; entry < length * P; entry += blockDim.x) {
      const int t = entry / P;
      const int p = entry % P;
      float dot = 0.0f;
      for (int n = 0; n < N; ++n) dot += c0[static_cast<long long>(t) * N + n] * state[p * N + n];
      y0[t * x_token + p] += expf(cum[t]) * dot;
    }
    __syncthreads();  // Every read of the incoming state is done before it is advanced.
    const float chunk_decay = expf(cum[length - 1]);
    const long long chunk_base =
        ((static_cast<long long>(batch) * shape.NumChunks() + k) * shape.heads + h) * P * N;
    for (int entry = threadIdx.x; entry < P * N; entry += blockDim.x) {
      state[entry] = chunk_decay * state[entry] + chunk_states[chunk_base + entry];
    }
    __syncthreads();  // cum is rewritten by the next chunk's thread 0.
  }
  if (final_state == nullptr) return;
  for (int entry = threadIdx.x; entry < P * N; entry += blockDim.x) {
    final_state[state_base + entry] = state[entry];
  }
}

void RequireShape(const SsdShape& shape) {
  SCALELAB_KERNEL_REQUIRE(shape.batch >= 1 && shape.seq >= 0 && shape.heads >= 1 &&
                              shape.head_dim >= 1 && shape.d_state >= 1 && shape.chunk >= 1 &&
                              shape.chunk <= 1024,
                          "batch=%d seq=%d heads=%d head_dim=%d d_state=%d chunk=%d", shape.batch,
                          shape.seq, shape.heads, shape.head_dim, shape.d_state, shape.chunk);
}

template <typename Kernel>
void AllowSharedBytes(Kernel kernel, size_t bytes) {
  if (bytes > kDefaultSharedBytes) {
    SCALELAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             static_cast<int>(bytes)));
  }
}

}  // namespace

void SsdChunkScan(float* y, float* chunk_states, const float* x, const float* dt, const float* a,
                  const float* b, const float* c, const SsdShape& shape, cudaStream_t stream) {
  RequireShape(shape);
  if (shape.seq == 0) return;
  const size_t shared_bytes = 3 * sizeof(float) * shape.chunk;
  const dim3 grid(shape.NumChunks(), shape.heads, shape.batch);
  SsdChunkScanKernel<<<grid, kBlockSize, shared_bytes, stream>>>(y, chunk_states, x, dt, a, b, c,
                                                                 shape);
  SCALELAB_CUDA_CHECK(cudaGetLastError());
}

void SsdChunkCombine(float* y, float* final_state, const float* chunk_states,
                     const float* initial_state, const float* dt, const float* a, const float* c,
                     const SsdShape& shape, cudaStream_t stream) {
  RequireShape(shape);
  const size_t shared_bytes =
      sizeof(float) * (static_cast<size_t>(shape.head_dim) * shape.d_state + 2 * shape.chunk);
  AllowSharedBytes(SsdChunkCombineKernel, shared_bytes);
  const dim3 grid(shape.heads, shape.batch);
  SsdChunkCombineKernel<<<grid, kBlockSize * 2, shared_bytes, stream>>>(
      y, final_state, chunk_states, initial_state, dt, a, c, shape);
  SCALELAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace scalelab::kernels
