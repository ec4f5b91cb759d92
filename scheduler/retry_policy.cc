#include "scheduler/retry_policy.h"

#include "runspec/run_config.h"

namespace scalelab::scheduler {

v1::RunState DecideAfterFailure(const v1::Run& run, v1::FailureClass failure_class) {
  switch (failure_class) {
    case v1::FAILURE_CLASS_USER:
    case v1::FAILURE_CLASS_UNSPECIFIED:
      // Running the same config again fails the same way; a person has to look.
      return v1::RUN_STATE_FAILED;
    case v1::FAILURE_CLASS_CANCELLED:
      return v1::RUN_STATE_CANCELLED;
    default:
      break;
  }
  const int max_attempts =
      run.max_attempts() > 0 ? run.max_attempts() : runspec::kDefaultMaxAttempts;
  return run.attempt() < max_attempts ? v1::RUN_STATE_PENDING : v1::RUN_STATE_FAILED;
}

}  // namespace scalelab::scheduler
