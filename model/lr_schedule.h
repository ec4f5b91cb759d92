// Learning-rate schedules: linear warmup, then cosine decay or a constant rate. Torch-free and
// pure.

#ifndef SCALELAB_MODEL_LR_SCHEDULE_H_
#define SCALELAB_MODEL_LR_SCHEDULE_H_

#include <cstdint>
#include <string_view>

namespace scalelab::model {

enum class LrSchedule {
  kCosine,    // Linear warmup, then cosine decay to 10% of the peak rate at the last step.
  kConstant,  // Linear warmup, then the peak rate.
};

// train.schedule as validated by runspec: "constant" -> kConstant, "cosine" -> kCosine.
LrSchedule LrScheduleFromName(std::string_view name);
std::string_view LrScheduleName(LrSchedule schedule);

// Learning rate for 0-based optimizer step `step` of `num_steps`: linear warmup over
// round(warmup * num_steps) steps (the first step already gets peak / warmup_steps), then the
// schedule. Cosine reaches 0.1 * peak at the last step.
double LearningRateAt(int64_t step, int64_t num_steps, double peak_lr, double warmup,
                      LrSchedule schedule);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LR_SCHEDULE_H_
