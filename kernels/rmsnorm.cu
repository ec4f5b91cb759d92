#include "kernels/cuda_check.cuh"
#include "kernels/device_util.cuh"
#include "kernels/rmsnorm.cuh"

namespace scalelab::kernels {
namespace {

// 8 warps, so 8 rows, per block: enough warps per SM to hide memory latency at small widths.
constexpr int kBlockSize = 256;
constexpr int kRowsPerBlock = kBlockSize / kWarpSize;
// Rows per partial sum of dweight: few enough partials to sum in a second pass, enough blocks to
// fill the GPU at training shapes (rows = batch * seq, in the thousands).
constexpr int kDweightRowsPerChunk = 256;

template <typename T>
__global__ void RmsNormForwardKernel(T* out, float* __restrict__ rstd, const T* x,
                                     const T* __restrict__ weight, int rows, int cols, float eps) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  // The whole warp leaves together, so the shuffles below always see 32 active lanes.
  if (row >= rows) return;
  const T* x_row = x + static_cast<long long>(row) * cols;
  T* out_row = out + static_cast<long long>(row) * cols;

  float sum_sq = 0.0f;
  for (int col = lane; col < cols; col += kWarpSize) {
    const float value = ToFloat(x_row[col]);
    sum_sq += value * value;
  }
  const float row_rstd = rsqrtf(WarpSum(sum_sq) / cols + eps);
  // out may alias x: every element is read (above and here) by the lane that writes it.
  for (int col = lane; col < cols; col += kWarpSize) {
    out_row[col] = FromFloat<T>(ToFloat(x_row[col]) * row_rstd * ToFloat(weight[col]));
  }
  if (lane == 0 && rstd != nullptr) rstd[row] = row_rstd;
}

__global__ void RmsNormBackwardDxKernel(float* dx, const float* dout, const float* __restrict__ x,
                                        const float* __restrict__ weight,
                                        const float* __restrict__ rstd, int rows, int cols) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (row >= rows) return;
  const long long offset = static_cast<long long>(row) * cols;
  float dot = 0.0f;
  for (int col = lane; col < cols; col += kWarpSize) {
    dot += dout[offset + col] * weight[col] * x[offset + col];
  }
  const float row_rstd = rstd[row];
  const float coefficient = row_rstd * row_rstd * WarpSum(dot) / cols;
  for (int col = lane; col < cols; col += kWarpSize) {
    dx[offset + col] =
        row_rstd * (weight[col] * dout[offset + col] - x[offset + col] * coefficient);
  }
}

// partial[chunk, col] = sum over the chunk's rows of dout * x * rstd. Threads of a block take
// consecutive columns, so every row is read coalesced.
__global__ void RmsNormDweightPartialKernel(float* __restrict__ partial,
                                            const float* __restrict__ dout,
                                            const float* __restrict__ x,
                                            const float* __restrict__ rstd, int rows, int cols) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  const int chunk = blockIdx.y;
  if (col >= cols) return;
  const int first = chunk * kDweightRowsPerChunk;
  const int last = min(rows, first + kDweightRowsPerChunk);
  float sum = 0.0f;
  for (int row = first; row < last; ++row) {
    const long long idx = static_cast<long long>(row) * cols + col;
    sum += dout[idx] * x[idx] * rstd[row];
  }
  partial[static_cast<long long>(chunk) * cols + col] = sum;
}

__global__ void SumChunksKernel(float* __restrict__ dweight, const float* __restrict__ partial,
                                int chunks, int cols) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= cols) return;
  float sum = 0.0f;
  for (int chunk = 0; chunk < chunks; ++chunk)
    sum += partial[static_cast<long long>(chunk) * cols + col];
  dweight[col] = sum;
}

template <typename T>
void LaunchForward(T* out, float* rstd, const T* x, const T* weight, int rows, int cols, float eps,
                   cudaStream_t stream) {
  SCALELAB_KERNEL_REQUIRE(rows >= 0 && cols >= 1, "rows=%d cols=%d", rows, cols);
  if (rows == 0) return;
  const int blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  RmsNormForwardKernel<T><<<blocks, kBlockSize, 0, stream>>>(out, rstd, x, weight, rows, cols, eps);
  SCALELAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void RmsNormForward(float* out, float* rstd, const float* x, const float* weight, int rows,
                    int cols, float eps, cudaStream_t stream) {
  LaunchForward(out, rstd, x, weight, rows, cols, eps, stream);
}

void RmsNormForward(__nv_bfloat16* out, float* rstd, const __nv_bfloat16* x,
                    const __nv_bfloat16* weight, int rows, int cols, float eps,
                    cudaStream_t stream) {
  LaunchForward(out, rstd, x, weight, rows, cols, eps, stream);
}

void RmsNormBackward(float* dx, float* dweight, const float* dout, const float* x,
                     const float* weight, const float* rstd, int rows, int cols,
                     cudaStream_t stream) {
  SCALELAB_KERNEL_REQUIRE(rows >= 0 && cols >= 1, "rows=%d cols=%d", rows, cols);
  constexpr int kColumnsPerBlock = 256;
  const int column_blocks = (cols + kColumnsPerBlock - 1) / kColumnsPerBlock;
  if (rows == 0) {
    if (dweight != nullptr) {
      SCALELAB_CUDA_CHECK(cudaMemsetAsync(dweight, 0, sizeof(float) * cols, stream));
    }
    return;
  }
  const int blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  // dweight first: dx may alias dout, which the dweight pass still reads.
  if (dweight != nullptr) {
    const int chunks = (rows + kDweightRowsPerChunk - 1) / kDweightRowsPerChunk;
    float* partial = nullptr;
    SCALELAB_CUDA_CHECK(cudaMallocAsync(reinterpret_cast<void**>(&partial),
                                        sizeof(float) * static_cast<size_t>(chunks) * cols,
                                        stream));
    RmsNormDweightPartialKernel<<<dim3(column_blocks, chunks), kColumnsPerBlock, 0, stream>>>(
        partial, dout, x, rstd, rows, cols);
    SCALELAB_CUDA_CHECK(cudaGetLastError());
    SumChunksKernel<<<column_blocks, kColumnsPerBlock, 0, stream>>>(dweight, partial, chunks, cols);
    SCALELAB_CUDA_CHECK(cudaGetLastError());
    SCALELAB_CUDA_CHECK(cudaFreeAsync(partial, stream));
  }
  RmsNormBackwardDxKernel<<<blocks, kBlockSize, 0, stream>>>(dx, dout, x, weight, rstd, rows, cols);
  SCALELAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace scalelab::kernels
