#include <cmath>

#include "kernels/cross_entropy.cuh"
#include "kernels/cuda_check.cuh"
#include "kernels/device_util.cuh"

namespace scalelab::kernels {
namespace {

// One block per row: vocabularies are 10^4 - 10^5 wide, so a row is enough work for a block.
constexpr int kBlockSize = 512;
constexpr int kWarps = kBlockSize / kWarpSize;

// The running (max, sum of exp(x - max)) pair of an online log-sum-exp, and its merge.
struct MaxSum {
  float max;
  float sum;
};

__device__ __forceinline__ MaxSum Merge(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY) return b;
  if (b.max == -INFINITY) return a;
  const float max = fmaxf(a.max, b.max);
  return {max, a.sum * expf(a.max - max) + b.sum * expf(b.max - max)};
}

__device__ MaxSum WarpMerge(MaxSum value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    MaxSum other;
    other.max = __shfl_xor_sync(0xffffffffu, value.max, offset);
    other.sum = __shfl_xor_sync(0xffffffffu, value.sum, offset);
    value = Merge(value, other);
  }
  return value;
}

template <typename T>
__global__ void __launch_bounds__(kBlockSize)
    CrossEntropyKernel(float* __restrict__ loss, T* dlogits, const T* logits,
                       const int64_t* __restrict__ targets, const float* __restrict__ dloss,
                       float grad_scale, int vocab) {
  __shared__ MaxSum warp_results[kWarps];
  __shared__ float row_lse;
  const int row = blockIdx.x;
  const T* row_logits = logits + static_cast<long long>(row) * vocab;

  MaxSum local{-INFINITY, 0.0f};
  for (int col = threadIdx.x; col < vocab; col += kBlockSize) {
    const float value = ToFloat(row_logits[col]);
    if (value == -INFINITY) continue;  // A masked logit adds nothing (and -inf - -inf is NaN).
    if (value > local.max) {
      local.sum = local.sum * expf(local.max - value) + 1.0f;
      local.max = value;
    } else {
      local.sum += expf(value - local.max);
    }
  }
  local = WarpMerge(local);
  const int warp = threadIdx.x / kWarpSize;
  const int lane = threadIdx.x % kWarpSize;
  if (lane == 0) warp_results[warp] = local;
  __syncthreads();
  if (warp == 0) {
    MaxSum merged = lane < kWarps ? warp_results[lane] : MaxSum{-INFINITY, 0.0f};
    merged = WarpMerge(merged);
    if (lane == 0) {
      // logf, not __logf: the loss is the reported number, keep it accurate.
      row_lse = merged.max + logf(merged.sum);
      const int64_t target = targets[row];
      loss[row] = (target >= 0 && target < vocab) ? row_lse - ToFloat(row_logits[target]) : NAN;
    }
  }
  // Also orders every read of the first pass before the writes below (dlogits may alias logits).
  __syncthreads();
  if (dlogits == nullptr) return;
  const float lse = row_lse;
  const int64_t target = targets[row];
  const float scale = dloss[0] * grad_scale;
  T* row_grad = dlogits + static_cast<long long>(row) * vocab;
  for (int col = threadIdx.x; col < vocab; col += kBlockSize) {
    const float probability = expf(ToFloat(row_logits[col]) - lse);
    row_grad[col] = FromFloat<T>((probability - (col == target ? 1.0f : 0.0f)) * scale);
  }
}

template <typename T>
void Launch(float* loss, T* dlogits, const T* logits, const int64_t* targets, const float* dloss,
            float grad_scale, int rows, int vocab, cudaStream_t stream) {
  SCALELAB_KERNEL_REQUIRE(rows >= 0 && vocab >= 1, "rows=%d vocab=%d", rows, vocab);
  SCALELAB_KERNEL_REQUIRE((dlogits == nullptr) == (dloss == nullptr),
                          "dlogits and dloss must be both set or both null");
  if (rows == 0) return;
  CrossEntropyKernel<T>
      <<<rows, kBlockSize, 0, stream>>>(loss, dlogits, logits, targets, dloss, grad_scale, vocab);
  SCALELAB_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void CrossEntropyForwardBackward(float* loss, float* dlogits, const float* logits,
                                 const int64_t* targets, const float* dloss, float grad_scale,
                                 int rows, int vocab, cudaStream_t stream) {
  Launch(loss, dlogits, logits, targets, dloss, grad_scale, rows, vocab, stream);
}

void CrossEntropyForwardBackward(float* loss, __nv_bfloat16* dlogits, const __nv_bfloat16* logits,
                                 const int64_t* targets, const float* dloss, float grad_scale,
                                 int rows, int vocab, cudaStream_t stream) {
  Launch(loss, dlogits, logits, targets, dloss, grad_scale, rows, vocab, stream);
}

}  // namespace scalelab::kernels
