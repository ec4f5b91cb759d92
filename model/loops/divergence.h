// Divergence detection for training loops: a run stops as a user fault (runspec exit code 4)
// when its training loss is NaN or inf, or exceeds `factor` times the lowest smoothed training
// loss seen so far. Header-only and torch-free; the state is plain numbers so a checkpoint can
// carry it and a resumed run decides exactly as the uninterrupted one would.

#ifndef SCALELAB_MODEL_LOOPS_DIVERGENCE_H_
#define SCALELAB_MODEL_LOOPS_DIVERGENCE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace scalelab::model {

// What the detector has seen; saved in checkpoints.
struct DivergenceState {
  int64_t observed = 0;  // Steps seen.
  double smoothed = 0;   // EMA of the training loss (decay kDivergenceEma).
  double best = 0;       // Lowest `smoothed` so far; meaningful once observed > 0.
};

// The EMA's weight on its previous value: about ten steps of memory, enough to ride out the
// step-to-step noise of small batches without hiding a blow-up.
inline constexpr double kDivergenceEma = 0.9;
// The factor test is armed after this many steps at least (and not before the warmup ends):
// the first steps' loss falls fast and their EMA is not yet a baseline.
inline constexpr int64_t kDivergenceMinSteps = 10;

class DivergenceDetector {
 public:
  // `factor` > 1 (train.divergence_factor); `warmup_steps` the schedule's warmup length.
  DivergenceDetector(double factor, int64_t warmup_steps)
      : factor_(factor), armed_after_(std::max(kDivergenceMinSteps, warmup_steps)) {}

  // Observes the loss of 1-based step `step`. kAborted naming the step, the loss and the
  // baseline when it is not finite or, once armed, exceeds factor x the best smoothed loss so
  // far (the comparison is with the baseline before this step, so one spike cannot raise it).
  absl::Status Observe(int64_t step, double loss) {
    if (!std::isfinite(loss)) {
      return absl::AbortedError(absl::StrCat("training diverged at step ", step,
                                             ": train_loss=", loss, " is not finite"));
    }
    if (state_.observed >= armed_after_ && loss > factor_ * state_.best) {
      return absl::AbortedError(absl::StrCat("training diverged at step ", step,
                                             ": train_loss=", loss, " exceeds ", factor_,
                                             " x the best smoothed loss ", state_.best));
    }
    state_.smoothed = state_.observed == 0
                          ? loss
                          : kDivergenceEma * state_.smoothed + (1 - kDivergenceEma) * loss;
    state_.best = state_.observed == 0 ? state_.smoothed : std::min(state_.best, state_.smoothed);
    ++state_.observed;
    return absl::OkStatus();
  }

  const DivergenceState& state() const { return state_; }
  void Restore(const DivergenceState& state) { state_ = state; }

 private:
  double factor_;
  int64_t armed_after_;
  DivergenceState state_;
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LOOPS_DIVERGENCE_H_
