// What happens to a run whose attempt ended badly: retried (PENDING again, a new attempt) or
// FAILED for good. User faults (exceptions, divergence, bad config) are not retried blindly;
// infrastructure faults are retried while the run has attempts left.
#ifndef SCALELAB_SCHEDULER_RETRY_POLICY_H_
#define SCALELAB_SCHEDULER_RETRY_POLICY_H_

#include "scalelab/v1/common.pb.h"

namespace scalelab::scheduler {

// `run.attempt()` is the number of attempts started so far, including the one that ended.
v1::RunState DecideAfterFailure(const v1::Run& run, v1::FailureClass failure_class);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_RETRY_POLICY_H_
