// lse_kernel.inc for the target's baseline vector unit: 2 lanes (16-byte vectors, which every
// x86-64 and arm64 CPU has; 32-byte ones would change the calling convention without AVX).
#define SCALELAB_KERNEL_NAMESPACE generic
#define SCALELAB_KERNEL_LANES 2
#include "services/analysis/internal/lse_kernel.inc"
