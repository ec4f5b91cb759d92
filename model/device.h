// What a run on a GPU needs beyond the ops: the card's memory use, and LibTorch's autocast.
// Everything here compiles with and without kernels/ (nvcc found at configure time) and against
// LibTorch 1.13 and 2.x; what a build cannot do it reports as an error, it does not pretend.

#ifndef SCALELAB_MODEL_DEVICE_H_
#define SCALELAB_MODEL_DEVICE_H_

#include <torch/torch.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace scalelab::model {

// Whether this build has the CUDA kernels of kernels/ (and so the CUDA runtime).
bool KernelsBuilt();

struct CudaMemoryInfo {
  int64_t used_bytes = 0;   // total - free: LibTorch's caching allocator's reserve (not only
                            // live tensors), the CUDA context, and any other process's memory.
  int64_t total_bytes = 0;  // The card's memory.
};

// cudaMemGetInfo on the current device. Errors: kUnimplemented in a build without kernels/ (no
// CUDA runtime linked); kUnavailable when the call fails (no device, driver error), with CUDA's
// message.
absl::StatusOr<CudaMemoryInfo> QueryCudaMemory();

// While alive, CUDA ops that LibTorch's autocast lists run in `dtype` (kBFloat16 or kHalf):
// matrix products, attention and convolutions cast their inputs, while reductions such as
// softmax stay fp32; the parameters stay fp32. Restores the previous autocast state and clears
// the cache of cast weights on destruction: construct one around each forward pass (not the
// backward), so no step reuses a cast of weights the optimizer has since changed.
// Not thread-safe in the sense of the autocast state being per thread: it affects this thread.
class CudaAutocast {
 public:
  explicit CudaAutocast(torch::ScalarType dtype);
  ~CudaAutocast();
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool was_enabled_;
  torch::ScalarType previous_dtype_;
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_DEVICE_H_
