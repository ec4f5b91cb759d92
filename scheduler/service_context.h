// What the gRPC service adapters share: the store, the clock, the metrics and the timing knobs.
// Everything here is owned by Scheduler and outlives the services.
#ifndef SCALELAB_SCHEDULER_SERVICE_CONTEXT_H_
#define SCALELAB_SCHEDULER_SERVICE_CONTEXT_H_

#include <atomic>
#include <chrono>
#include <string>

#include "absl/time/time.h"
#include "scheduler/events.h"
#include "scheduler/placement.h"
#include "scheduler/placement_state.h"
#include "scheduler/reports.h"
#include "scheduler/retry_policy.h"
#include "scheduler/scheduler_metrics.h"
#include "services/analysis/carbon.h"
#include "services/common/clock.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

class Admitter;

struct ServiceContext {
  services::Store* store = nullptr;
  services::Clock* clock = nullptr;
  SchedulerMetrics* metrics = nullptr;
  PlacementState* placement = nullptr;  // the cluster view LeaseRuns places on
  PlacementOptions placement_options;
  // The scheduling cycle; LeaseRuns wakes it when a worker finds nothing admitted to it.
  // nullptr: no cycle runs, LeaseRuns admits synchronously (GrantLeases).
  Admitter* admitter = nullptr;
  absl::Duration lease_ttl = absl::Seconds(15);
  // Where gangs' ranks meet (the port each gang's rank 0 listens on).
  services::RendezvousPorts rendezvous;
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // A watch re-reads its sweep when a run of any sweep changed (events), and at least this often.
  absl::Duration watch_poll = absl::Seconds(2);
  EventBus* events = nullptr;  // nullptr: watches re-read every watch_poll
  // Defaults of carbon reports (a request may override PUE and grid intensity).
  analysis::CarbonAssumptions carbon;
  ReliabilityAssumptions reliability;
  RetryOptions retry;  // how CompleteRun decides retries (scheduler/retry_policy.h)
  const std::atomic<bool>* stopping = nullptr;  // set when the daemon shuts down
};

// Observes scalelab_scheduler_rpc_duration_seconds{method} when it goes out of scope.
class RpcTimer {
 public:
  RpcTimer(SchedulerMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(std::chrono::steady_clock::now()) {}
  ~RpcTimer();

 private:
  SchedulerMetrics* metrics_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SERVICE_CONTEXT_H_
