// lse_kernel.inc with 4 lanes, compiled with -mavx2 -mfma (services/analysis/CMakeLists.txt).
// Called only when the CPU reports both (lse_kernel.cc).
#define SCALELAB_KERNEL_NAMESPACE avx2
#define SCALELAB_KERNEL_LANES 4
#include "services/analysis/internal/lse_kernel.inc"
