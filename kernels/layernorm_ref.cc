#include "kernels/layernorm_ref.h"

#include <cmath>

namespace scalelab::kernels {

void LayerNormForwardRef(float* out, float* mean, float* rstd, const float* x, const float* weight,
                         const float* bias, int rows, int cols, float eps) {
  for (int row = 0; row < rows; ++row) {
    const float* x_row = x + static_cast<long>(row) * cols;
    float* out_row = out + static_cast<long>(row) * cols;
    // Two passes in double: the reference should be more accurate than any kernel it checks,
    // so a tolerance failure points at the kernel.
    double sum = 0;
    for (int col = 0; col < cols; ++col) sum += x_row[col];
    const double row_mean = sum / cols;
    double sum_sq = 0;
    for (int col = 0; col < cols; ++col) {
      const double centered = x_row[col] - row_mean;
      sum_sq += centered * centered;
    }
    const double row_rstd = 1.0 / std::sqrt(sum_sq / cols + static_cast<double>(eps));
    for (int col = 0; col < cols; ++col) {
      out_row[col] =
          static_cast<float>((x_row[col] - row_mean) * row_rstd * weight[col] + bias[col]);
    }
    if (mean != nullptr) mean[row] = static_cast<float>(row_mean);
    if (rstd != nullptr) rstd[row] = static_cast<float>(row_rstd);
  }
}

}  // namespace scalelab::kernels
