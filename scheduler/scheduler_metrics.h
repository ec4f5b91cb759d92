// The scheduler's Prometheus series. Thread-safe (prometheus-cpp metrics are atomic).
#ifndef SCALELAB_SCHEDULER_SCHEDULER_METRICS_H_
#define SCALELAB_SCHEDULER_SCHEDULER_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>

#include "services/store/store.h"

namespace scalelab::scheduler {

class SchedulerMetrics {
 public:
  explicit SchedulerMetrics(prometheus::Registry& registry);

  // Sets scalelab_scheduler_runs{state} and scalelab_scheduler_workers{state} from the store.
  void SetCounts(const services::StoreCounts& counts);

  prometheus::Counter& sweeps_submitted;  // scalelab_scheduler_sweeps_submitted_total
  prometheus::Counter& metric_points;     // scalelab_scheduler_metric_points_ingested_total
  prometheus::Counter& evals;             // scalelab_scheduler_evals_ingested_total
  prometheus::Counter& tokens_trained;    // scalelab_scheduler_tokens_trained_total
  prometheus::Counter& leases_granted;    // scalelab_scheduler_leases_granted_total
  prometheus::Counter& leases_expired;    // scalelab_scheduler_leases_expired_total
  // Reports and heartbeat entries refused because their lease token was not the run's current
  // lease: scalelab_scheduler_fenced_reports_total{method}.
  prometheus::Family<prometheus::Counter>& fenced_reports;
  prometheus::Counter& quarantines;  // scalelab_scheduler_worker_quarantines_total
  prometheus::Family<prometheus::Counter>& runs_finished;  // ..._runs_finished_total{state}
  prometheus::Family<prometheus::Histogram>& rpc_seconds;  // ..._rpc_duration_seconds{method}
  prometheus::Counter& admissions;                         // ..._admissions_total
  prometheus::Histogram& cycle_seconds;                    // ..._scheduling_cycle_duration_seconds
  prometheus::Counter& admissions_requeued;                // ..._admissions_requeued_total
  // Victim attempts asked to checkpoint and stop for a higher class: ..._preemptions_total.
  prometheus::Counter& preemptions;

  // Sets scalelab_scheduler_queue_depth{priority} (PENDING runs per class).
  void SetQueueDepth(const std::map<std::string, int64_t>& pending_by_priority);

 private:
  prometheus::Family<prometheus::Gauge>& runs_;
  prometheus::Family<prometheus::Gauge>& workers_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SCHEDULER_METRICS_H_
