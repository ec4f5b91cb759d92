// Fail-fast CUDA error checking for host code: a failed runtime call prints the call, file:line,
// CUDA's message and a hint, then aborts. Kernel launches are asynchronous, so a launch is checked
// with SCALELAB_CUDA_CHECK(cudaGetLastError()) right after it; errors inside the kernel surface
// at the next synchronizing call, which should be checked too.

#ifndef SCALELAB_KERNELS_CUDA_CHECK_CUH_
#define SCALELAB_KERNELS_CUDA_CHECK_CUH_

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace scalelab::kernels {

[[noreturn]] inline void CudaFail(cudaError_t error, const char* call, const char* file, int line) {
  std::fprintf(stderr,
               "CUDA error at %s:%d: %s failed: %s (%s)\n"
               "hint: check that a GPU is visible (nvidia-smi) and that its architecture is one "
               "kernels/ is built for (CMAKE_CUDA_ARCHITECTURES 80;90)\n",
               file, line, call, cudaGetErrorString(error), cudaGetErrorName(error));
  std::abort();
}

}  // namespace scalelab::kernels

#define SCALELAB_CUDA_CHECK(call)                                                     \
  do {                                                                                \
    const cudaError_t scalelab_cuda_error_ = (call);                                  \
    if (scalelab_cuda_error_ != cudaSuccess) {                                        \
      ::scalelab::kernels::CudaFail(scalelab_cuda_error_, #call, __FILE__, __LINE__); \
    }                                                                                 \
  } while (0)

#endif  // SCALELAB_KERNELS_CUDA_CHECK_CUH_
