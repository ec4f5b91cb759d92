// model/device.h without a GPU: CudaAutocast sets LibTorch's CUDA autocast state for its lifetime
// and restores what was there before (the state is per thread and needs no device).

#include "model/device.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <catch2/catch.hpp>

namespace scalelab::model {
namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool Enabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
torch::ScalarType Dtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
#else
bool Enabled() { return at::autocast::is_enabled(); }
torch::ScalarType Dtype() { return at::autocast::get_autocast_gpu_dtype(); }
#endif

TEST_CASE("CudaAutocast enables bf16 autocast while alive and restores the state after",
          "[model][unit][device]") {
  const bool was_enabled = Enabled();
  const torch::ScalarType was_dtype = Dtype();
  REQUIRE_FALSE(was_enabled);
  {
    CudaAutocast outer(torch::kBFloat16);
    CHECK(Enabled());
    CHECK(Dtype() == torch::kBFloat16);
    {
      CudaAutocast inner(torch::kHalf);
      CHECK(Dtype() == torch::kHalf);
    }
    // The inner guard put back the outer one's state, not the process's first one.
    CHECK(Enabled());
    CHECK(Dtype() == torch::kBFloat16);
  }
  CHECK(Enabled() == was_enabled);
  CHECK(Dtype() == was_dtype);
}

TEST_CASE("QueryCudaMemory answers with figures or an error that says why",
          "[model][unit][device]") {
  absl::StatusOr<CudaMemoryInfo> info = QueryCudaMemory();
  if (info.ok()) {
    CHECK(info->total_bytes > 0);
    CHECK(info->used_bytes <= info->total_bytes);
  } else {
    INFO(info.status().ToString());
    CHECK_FALSE(info.status().message().empty());
    CHECK((KernelsBuilt() ? absl::IsUnavailable(info.status())
                          : absl::IsUnimplemented(info.status())));
  }
}

}  // namespace
}  // namespace scalelab::model
