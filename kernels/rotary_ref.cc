#include "kernels/rotary_ref.h"

#include <cstddef>

namespace scalelab::kernels {

void RotaryRef(float* out, const float* x, const float* cos, const float* sin, int rows, int seq,
               int head_dim, bool inverse) {
  const int half = head_dim / 2;
  const double sign = inverse ? -1.0 : 1.0;
  for (int row = 0; row < rows; ++row) {
    for (int position = 0; position < seq; ++position) {
      const size_t base = (static_cast<size_t>(row) * seq + position) * head_dim;
      const size_t table = static_cast<size_t>(position) * half;
      for (int pair = 0; pair < half; ++pair) {
        const double x1 = x[base + pair];
        const double x2 = x[base + pair + half];
        const double c = cos[table + pair];
        const double s = sign * sin[table + pair];
        out[base + pair] = static_cast<float>(x1 * c - x2 * s);
        out[base + pair + half] = static_cast<float>(x2 * c + x1 * s);
      }
    }
  }
}

}  // namespace scalelab::kernels
