// Quarantine: which workers stop getting leases because their infrastructure-failure rate stands
// out, and when they come back. Pure policy over the store's facts
// (services::WorkerFailureStats); the scheduler's reaper applies the actions.
//
// A worker is quarantined when, over the last `window`, it had at least `min_failures`
// infrastructure failures (SYSTEM_SOFTWARE, HARDWARE_*, NODE_LOST, OUT_OF_MEMORY) AND more than
// `outlier_factor` times the mean of the other live workers' counts: a cluster-wide problem
// (a bad filesystem for everyone) does not empty the cluster. The last non-quarantined worker is
// never quarantined. A quarantined worker keeps its running attempts, gets no new lease, and
// is released once `cooldown` has passed since it was quarantined and its last
// `release_after_healthy` heartbeats all passed their health checks.
#ifndef SCALELAB_SCHEDULER_QUARANTINE_H_
#define SCALELAB_SCHEDULER_QUARANTINE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

struct QuarantineOptions {
  absl::Duration window = absl::Hours(1);             // failures counted over this past
  int min_failures = 3;                               // at least this many in the window
  double outlier_factor = 3.0;                        // and more than this x the others' mean
  absl::Duration cooldown = absl::Minutes(10);        // quarantined at least this long
  int release_after_healthy = 5;                      // then this many all-ok heartbeats in a row
  absl::Duration check_interval = absl::Seconds(10);  // how often the reaper decides
  absl::Status Validate() const;
};

struct QuarantineAction {
  int64_t worker_id = 0;
  bool quarantine = true;  // false: release
  std::string reason;
};

std::vector<QuarantineAction> DecideQuarantine(
    const std::vector<services::WorkerFailureStats>& workers, absl::Time now,
    const QuarantineOptions& options);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_QUARANTINE_H_
