#include "model/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace scalelab::model {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Cosine decay ends at this fraction of the peak rate rather than zero, so the last steps still
// learn something; 10% is the usual choice in scaling-law work.
constexpr double kFinalLrFraction = 0.1;

}  // namespace

LrSchedule LrScheduleFromName(std::string_view name) {
  return name == "constant" ? LrSchedule::kConstant : LrSchedule::kCosine;
}

std::string_view LrScheduleName(LrSchedule schedule) {
  return schedule == LrSchedule::kCosine ? "cosine" : "constant";
}

double LearningRateAt(int64_t step, int64_t num_steps, double peak_lr, double warmup,
                      LrSchedule schedule) {
  const int64_t warmup_steps = std::llround(warmup * static_cast<double>(num_steps));
  if (step < warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (schedule == LrSchedule::kConstant) return peak_lr;
  const int64_t decay_steps = num_steps - 1 - warmup_steps;
  const double progress =
      decay_steps <= 0
          ? 1.0
          : std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps),
                       0.0, 1.0);
  const double min_lr = kFinalLrFraction * peak_lr;
  return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(kPi * progress));
}

}  // namespace scalelab::model
