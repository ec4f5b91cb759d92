// The inner loop of every fit: the LSE-Huber objective of lse_fit.h and its gradient over all
// points, vectorised. Private to services/analysis.
//
// Two builds of one source (lse_kernel.inc): `generic` (2 lanes, whatever the target's baseline
// vector unit is: SSE2 on x86-64, NEON on arm64) and, on x86-64, `avx2` (4 lanes, AVX2 + FMA,
// compiled with -mavx2 -mfma and only called when the CPU has both). exp() and log() are our
// own polynomial versions (about 1 ulp on the ranges used), written with GCC vector extensions
// so that both builds vectorise them; libm's scalar calls were 80% of a fit's time.
#ifndef SCALELAB_SERVICES_ANALYSIS_INTERNAL_LSE_KERNEL_H_
#define SCALELAB_SERVICES_ANALYSIS_INTERNAL_LSE_KERNEL_H_

#include <cstddef>

namespace scalelab::analysis::internal {

// Arrays hold `padded_points` values, a multiple of kKernelPadding; padding has weight 0.
inline constexpr size_t kKernelPadding = 4;

struct KernelInput {
  const double* features[2] = {nullptr, nullptr};  // x_1i, x_2i (the second only for 2 terms)
  const double* log_loss = nullptr;
  const double* weight = nullptr;
  size_t padded_points = 0;
  int num_terms = 2;
  // c_k and p_k of lse_fit.h and exp(e). The caller guarantees every exponent c_k - p_k x_ki is
  // at most ~700 and exp(e) is a positive normal number (so the sum can neither overflow nor
  // reach 0).
  double coef[2] = {0, 0};
  double power[2] = {0, 0};
  double exp_e = 1;
  double delta = 1e-3;
};

struct KernelOutput {
  double objective = 0;
  // d objective / d c_k, d objective / d p_k, and d objective / d exp(e) * exp(e) = d / d e.
  double coef_gradient[2] = {0, 0};
  double power_gradient[2] = {0, 0};
  double e_gradient = 0;
};

// The fastest build this CPU runs. Thread-safe.
void EvaluateKernel(const KernelInput& input, bool with_gradient, KernelOutput* output);

// Whether EvaluateKernel uses the AVX2 build (for tests and the benchmark's report).
bool KernelUsesAvx2();

// Whether the AVX2 build was compiled in (x86-64 with a compiler taking -mavx2 -mfma), and
// whether this CPU has AVX2 and FMA.
bool Avx2KernelBuilt();
bool CpuHasAvx2Fma();

namespace generic {
void EvaluateKernel(const KernelInput& input, bool with_gradient, KernelOutput* output);
}  // namespace generic

namespace avx2 {
// Call only when Avx2KernelBuilt() and CpuHasAvx2Fma(); where the build is missing this is the
// generic one.
void EvaluateKernel(const KernelInput& input, bool with_gradient, KernelOutput* output);
}  // namespace avx2

}  // namespace scalelab::analysis::internal

#endif  // SCALELAB_SERVICES_ANALYSIS_INTERNAL_LSE_KERNEL_H_
