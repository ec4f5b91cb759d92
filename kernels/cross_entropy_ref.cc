#include "kernels/cross_entropy_ref.h"

#include <cmath>
#include <cstddef>
#include <limits>

namespace scalelab::kernels {

void CrossEntropyRef(float* loss, float* dlogits, const float* logits, const int64_t* targets,
                     float dloss, float grad_scale, int rows, int vocab) {
  for (int row = 0; row < rows; ++row) {
    const float* row_logits = logits + static_cast<size_t>(row) * vocab;
    double running_max = -std::numeric_limits<double>::infinity();
    double running_sum = 0;
    for (int col = 0; col < vocab; ++col) {
      const double value = row_logits[col];
      if (value == -std::numeric_limits<double>::infinity()) continue;
      if (value > running_max) {
        running_sum = running_sum * std::exp(running_max - value) + 1.0;
        running_max = value;
      } else {
        running_sum += std::exp(value - running_max);
      }
    }
    const double lse = running_max + std::log(running_sum);
    const int64_t target = targets[row];
    const bool valid = target >= 0 && target < vocab;
    loss[row] = valid ? static_cast<float>(lse - row_logits[target])
                      : std::numeric_limits<float>::quiet_NaN();
    if (dlogits == nullptr) continue;
    float* row_grad = dlogits + static_cast<size_t>(row) * vocab;
    const double scale = static_cast<double>(dloss) * grad_scale;
    for (int col = 0; col < vocab; ++col) {
      const double probability = std::exp(row_logits[col] - lse);
      row_grad[col] = static_cast<float>((probability - (col == target ? 1.0 : 0.0)) * scale);
    }
  }
}

}  // namespace scalelab::kernels
