#include "model/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace scalelab::model {
namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

LrSchedule LrScheduleFromName(std::string_view name) {
  if (name == "constant") return LrSchedule::kConstant;
  if (name == "wsd") return LrSchedule::kWsd;
  return LrSchedule::kCosine;
}

std::string_view LrScheduleName(LrSchedule schedule) {
  switch (schedule) {
    case LrSchedule::kConstant:
      return "constant";
    case LrSchedule::kWsd:
      return "wsd";
    case LrSchedule::kCosine:
      break;
  }
  return "cosine";
}

double LearningRateAt(int64_t step, int64_t num_steps, const LrScheduleSpec& spec) {
  const double peak_lr = spec.peak_lr;
  const int64_t warmup_steps = std::llround(spec.warmup * static_cast<double>(num_steps));
  if (step < warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  const double min_lr = spec.final_lr * peak_lr;
  switch (spec.schedule) {
    case LrSchedule::kConstant:
      return peak_lr;
    case LrSchedule::kWsd: {
      const int64_t decay_steps =
          std::min(std::llround(spec.decay * static_cast<double>(num_steps)),
                   static_cast<long long>(num_steps - warmup_steps));
      const int64_t decay_start = num_steps - decay_steps;
      if (decay_steps <= 0 || step < decay_start) return peak_lr;
      // Counting from 1 puts the last step exactly on min_lr and makes every decay step decay.
      const double progress = std::min(
          1.0, static_cast<double>(step - decay_start + 1) / static_cast<double>(decay_steps));
      return peak_lr + (min_lr - peak_lr) * progress;
    }
    case LrSchedule::kCosine:
      break;
  }
  const int64_t decay_steps = num_steps - 1 - warmup_steps;
  const double progress =
      decay_steps <= 0
          ? 1.0
          : std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps),
                       0.0, 1.0);
  return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(kPi * progress));
}

double LearningRateAt(int64_t step, int64_t num_steps, double peak_lr, double warmup,
                      LrSchedule schedule) {
  return LearningRateAt(step, num_steps,
                        LrScheduleSpec{schedule, peak_lr, warmup, /*decay=*/0.2,
                                       /*final_lr=*/0.1});
}

}  // namespace scalelab::model
