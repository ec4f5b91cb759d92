#include "services/analysis/internal/lse_kernel.h"

namespace scalelab::analysis::internal {
namespace {

using KernelFunction = void (*)(const KernelInput&, bool, KernelOutput*);

KernelFunction ChooseKernel() {
  return Avx2KernelBuilt() && CpuHasAvx2Fma() ? avx2::EvaluateKernel : generic::EvaluateKernel;
}

KernelFunction Kernel() {
  static const KernelFunction kernel = ChooseKernel();
  return kernel;
}

}  // namespace

void EvaluateKernel(const KernelInput& input, bool with_gradient, KernelOutput* output) {
  Kernel()(input, with_gradient, output);
}

bool KernelUsesAvx2() { return Kernel() != generic::EvaluateKernel; }

bool Avx2KernelBuilt() {
#if defined(SCALELAB_ANALYSIS_HAVE_AVX2)
  return true;
#else
  return false;
#endif
}

bool CpuHasAvx2Fma() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

#if !defined(SCALELAB_ANALYSIS_HAVE_AVX2)
namespace avx2 {
void EvaluateKernel(const KernelInput& input, bool with_gradient, KernelOutput* output) {
  generic::EvaluateKernel(input, with_gradient, output);
}
}  // namespace avx2
#endif

}  // namespace scalelab::analysis::internal
