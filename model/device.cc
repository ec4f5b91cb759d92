#include "model/device.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

#ifdef SCALELAB_WITH_KERNELS
#include <cuda_runtime.h>
#endif

namespace scalelab::model {
namespace {

// LibTorch 2.4 made autocast per device type (set_autocast_enabled(kCUDA, ...)); 1.13 has the
// CUDA-only calls (set_enabled, set_autocast_gpu_dtype), deprecated since.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool AutocastEnabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
void SetAutocastEnabled(bool enabled) { at::autocast::set_autocast_enabled(at::kCUDA, enabled); }
torch::ScalarType AutocastDtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
void SetAutocastDtype(torch::ScalarType dtype) {
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
}
#else
bool AutocastEnabled() { return at::autocast::is_enabled(); }
void SetAutocastEnabled(bool enabled) { at::autocast::set_enabled(enabled); }
torch::ScalarType AutocastDtype() { return at::autocast::get_autocast_gpu_dtype(); }
void SetAutocastDtype(torch::ScalarType dtype) { at::autocast::set_autocast_gpu_dtype(dtype); }
#endif

}  // namespace

bool KernelsBuilt() {
#ifdef SCALELAB_WITH_KERNELS
  return true;
#else
  return false;
#endif
}

absl::StatusOr<CudaMemoryInfo> QueryCudaMemory() {
#ifdef SCALELAB_WITH_KERNELS
  size_t free_bytes = 0;
  size_t total_bytes = 0;
  const cudaError_t error = cudaMemGetInfo(&free_bytes, &total_bytes);
  if (error != cudaSuccess) {
    return absl::UnavailableError(
        absl::StrCat("cudaMemGetInfo failed: ", cudaGetErrorString(error)));
  }
  CudaMemoryInfo info;
  info.total_bytes = static_cast<int64_t>(total_bytes);
  info.used_bytes = static_cast<int64_t>(total_bytes - free_bytes);
  return info;
#else
  return absl::UnimplementedError("built without kernels/ (no nvcc): no CUDA runtime to ask");
#endif
}

CudaAutocast::CudaAutocast(torch::ScalarType dtype)
    : was_enabled_(AutocastEnabled()), previous_dtype_(AutocastDtype()) {
  SetAutocastDtype(dtype);
  SetAutocastEnabled(true);
  at::autocast::increment_nesting();
}

CudaAutocast::~CudaAutocast() {
  // As Python's torch.autocast does on leaving its outermost region.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  SetAutocastEnabled(was_enabled_);
  SetAutocastDtype(previous_dtype_);
}

}  // namespace scalelab::model
