#include "kernels/rmsnorm_ref.h"

#include <cmath>
#include <cstddef>
#include <vector>

namespace scalelab::kernels {
namespace {

double RowRstd(const float* x_row, int cols, float eps) {
  double sum_sq = 0;
  for (int col = 0; col < cols; ++col) sum_sq += static_cast<double>(x_row[col]) * x_row[col];
  return 1.0 / std::sqrt(sum_sq / cols + eps);
}

}  // namespace

void RmsNormForwardRef(float* out, float* rstd, const float* x, const float* weight, int rows,
                       int cols, float eps) {
  for (int row = 0; row < rows; ++row) {
    const float* x_row = x + static_cast<size_t>(row) * cols;
    float* out_row = out + static_cast<size_t>(row) * cols;
    const double row_rstd = RowRstd(x_row, cols, eps);
    for (int col = 0; col < cols; ++col) {
      out_row[col] = static_cast<float>(x_row[col] * row_rstd * weight[col]);
    }
    if (rstd != nullptr) rstd[row] = static_cast<float>(row_rstd);
  }
}

void RmsNormBackwardRef(float* dx, float* dweight, const float* dout, const float* x,
                        const float* weight, int rows, int cols, float eps) {
  std::vector<double> dweight_sum(cols, 0.0);
  for (int row = 0; row < rows; ++row) {
    const size_t offset = static_cast<size_t>(row) * cols;
    const double row_rstd = RowRstd(x + offset, cols, eps);
    double dot = 0;  // sum_k dout_k * w_k * x_k: the part of the gradient through rstd.
    for (int col = 0; col < cols; ++col) {
      dot += static_cast<double>(dout[offset + col]) * weight[col] * x[offset + col];
      dweight_sum[col] += static_cast<double>(dout[offset + col]) * x[offset + col] * row_rstd;
    }
    const double coefficient = row_rstd * row_rstd * dot / cols;
    for (int col = 0; col < cols; ++col) {
      dx[offset + col] =
          static_cast<float>(row_rstd * (static_cast<double>(weight[col]) * dout[offset + col] -
                                         x[offset + col] * coefficient));
    }
  }
  if (dweight != nullptr) {
    for (int col = 0; col < cols; ++col) dweight[col] = static_cast<float>(dweight_sum[col]);
  }
}

}  // namespace scalelab::kernels
