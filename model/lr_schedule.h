// Learning-rate schedules: linear warmup, then cosine decay, a constant rate, or
// warmup-stable-decay. Torch-free and pure.

#ifndef SCALELAB_MODEL_LR_SCHEDULE_H_
#define SCALELAB_MODEL_LR_SCHEDULE_H_

#include <cstdint>
#include <string_view>

namespace scalelab::model {

enum class LrSchedule {
  kCosine,    // Linear warmup, then cosine decay to final_lr * peak at the last step.
  kConstant,  // Linear warmup, then the peak rate.
  kWsd,       // Linear warmup, the peak rate, then a linear decay over the last `decay` fraction
              // of the steps to final_lr * peak at the last step.
};

// train.schedule as validated by runspec: "constant" -> kConstant, "wsd" -> kWsd, "cosine" ->
// kCosine.
LrSchedule LrScheduleFromName(std::string_view name);
std::string_view LrScheduleName(LrSchedule schedule);

// A schedule's parameters, as TrainPlan holds them (runspec supplies every default).
struct LrScheduleSpec {
  LrSchedule schedule = LrSchedule::kCosine;
  double peak_lr = 0;
  double warmup = 0;    // Fraction of the steps.
  double decay = 0;     // kWsd: fraction of the steps in the final decay.
  double final_lr = 0;  // kCosine, kWsd: the last step's rate as a fraction of peak_lr.
};

// Learning rate for 0-based optimizer step `step` of `num_steps`: linear warmup over
// round(warmup * num_steps) steps (the first step already gets peak / warmup_steps), then the
// schedule. kWsd decays over round(decay * num_steps) steps (never into the warmup); its first
// decay step is already below the peak and the last is final_lr * peak.
double LearningRateAt(int64_t step, int64_t num_steps, const LrScheduleSpec& spec);

// The same with runspec's defaults for the schedule's end (final_lr 0.1, decay 0.2).
double LearningRateAt(int64_t step, int64_t num_steps, double peak_lr, double warmup,
                      LrSchedule schedule);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LR_SCHEDULE_H_
