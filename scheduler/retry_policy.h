// What happens to a run whose attempt ended badly: retried (PENDING again, a new attempt) or
// ended for good, and for a retry when and where the next attempt may start. Pure policy: the
// store persists the decision (services::RetryDecision) with the run.
//
// The rule, by failure class:
//   USER, UNSPECIFIED        FAILED. Running the same config again fails the same way. The worker
//                            classes a crash (SIGSEGV/SIGABRT) without other evidence as USER,
//                            so an ambiguous crash is not retried either: a person looks.
//   CANCELLED                CANCELLED.
//   PREEMPTED                PENDING at once, on any worker; spends no budget (the scheduler's
//                            own decision, or a worker shutting down).
//   OUT_OF_MEMORY            Ambiguous (the run's size, or a crowded node): at most
//                            `oom_retries` retries, on another worker, after the backoff.
//   SYSTEM_SOFTWARE, HARDWARE_TRANSIENT, HARDWARE_PERMANENT, NODE_LOST
//                            Infrastructure: PENDING while run.infra_retries < max_attempts - 1,
//                            on another worker, after base * 2^infra_retries (capped) scaled by a
//                            deterministic jitter in [0.5, 1] drawn from (run id, retry number).
// Every retry resumes from the run's last checkpoint (the trainer's own behaviour).
#ifndef SCALELAB_SCHEDULER_RETRY_POLICY_H_
#define SCALELAB_SCHEDULER_RETRY_POLICY_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "scalelab/v1/common.pb.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

struct RetryOptions {
  absl::Duration base_backoff = absl::Seconds(10);  // before the first infrastructure retry
  absl::Duration max_backoff = absl::Minutes(10);   // cap of the doubling
  int oom_retries = 1;                              // OUT_OF_MEMORY retries per run
  absl::Status Validate() const;
};

// The wait before retry number `retry` (1-based) of `run_id`: base * 2^(retry-1), capped at
// max_backoff, times a jitter in [0.5, 1] that depends only on (run_id, retry).
absl::Duration RetryBackoff(const RetryOptions& options, int64_t run_id, int retry);

// `counts` are the retries the run spent so far; `run.max_attempts()` 0 means
// runspec::kDefaultMaxAttempts.
services::RetryDecision DecideAfterFailure(const v1::Run& run, v1::FailureClass failure_class,
                                           const services::RetryCounts& counts,
                                           const RetryOptions& options = RetryOptions());

// DecideAfterFailure with `options`, as the store's RetryDecider (Store::CompleteRun).
services::RetryDecider RetryDeciderWith(const RetryOptions& options = RetryOptions());

// True for the classes that count against a node (quarantine) and retry elsewhere.
bool IsInfrastructureFailure(v1::FailureClass failure_class);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_RETRY_POLICY_H_
