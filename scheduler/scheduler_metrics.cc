#include "scheduler/scheduler_metrics.h"

#include <string>

#include "services/common/run_state.h"

namespace scalelab::scheduler {
namespace {

prometheus::Counter& SimpleCounter(prometheus::Registry& registry, const std::string& name,
                                   const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

SchedulerMetrics::SchedulerMetrics(prometheus::Registry& registry)
    : sweeps_submitted(
          SimpleCounter(registry, "scalelab_scheduler_sweeps_submitted_total",
                        "Sweeps stored by SubmitSweep (idempotent repeats excluded).")),
      metric_points(SimpleCounter(registry, "scalelab_scheduler_metric_points_ingested_total",
                                  "Metric points newly stored from worker reports.")),
      evals(SimpleCounter(registry, "scalelab_scheduler_evals_ingested_total",
                          "Evaluation results stored (new or replaced) from worker reports.")),
      tokens_trained(SimpleCounter(registry, "scalelab_scheduler_tokens_trained_total",
                                   "Training tokens reported by all runs.")),
      leases_granted(SimpleCounter(registry, "scalelab_scheduler_leases_granted_total",
                                   "Run attempts leased to workers.")),
      leases_expired(SimpleCounter(registry, "scalelab_scheduler_leases_expired_total",
                                   "Leases that ended because their worker stopped heartbeating.")),
      fenced_reports(prometheus::BuildCounter()
                         .Name("scalelab_scheduler_fenced_reports_total")
                         .Help("Reports refused because their lease token was not the run's "
                               "current lease.")
                         .Register(registry)),
      quarantines(SimpleCounter(registry, "scalelab_scheduler_worker_quarantines_total",
                                "Workers put in quarantine for their infrastructure failures.")),
      runs_finished(prometheus::BuildCounter()
                        .Name("scalelab_scheduler_runs_finished_total")
                        .Help("Attempt completions by the run state they led to.")
                        .Register(registry)),
      rpc_seconds(prometheus::BuildHistogram()
                      .Name("scalelab_scheduler_rpc_duration_seconds")
                      .Help("Time to answer a gRPC call, by method.")
                      .Register(registry)),
      admissions(SimpleCounter(registry, "scalelab_scheduler_admissions_total",
                               "Runs admitted (PENDING -> ADMITTED) by the scheduling cycle.")),
      cycle_seconds(
          prometheus::BuildHistogram()
              .Name("scalelab_scheduler_scheduling_cycle_duration_seconds")
              .Help("Wall time of one admission pass: read, decide, write.")
              .Register(registry)
              .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025,
                                                               0.05, 0.1, 0.25, 0.5, 1, 2.5, 5})),
      admissions_requeued(
          SimpleCounter(registry, "scalelab_scheduler_admissions_requeued_total",
                        "Admissions not leased in time (or whose worker was lost), requeued.")),
      preemptions(SimpleCounter(registry, "scalelab_scheduler_preemptions_total",
                                "Running attempts asked to checkpoint and stop so that a run of "
                                "a higher priority class can take their resources.")),
      runs_(prometheus::BuildGauge()
                .Name("scalelab_scheduler_runs")
                .Help("Runs in the store by state.")
                .Register(registry)),
      workers_(prometheus::BuildGauge()
                   .Name("scalelab_scheduler_workers")
                   .Help("Registered workers by state (ALIVE, LOST).")
                   .Register(registry)),
      queue_depth_(prometheus::BuildGauge()
                       .Name("scalelab_scheduler_queue_depth")
                       .Help("PENDING runs by priority class.")
                       .Register(registry)) {}

void SchedulerMetrics::SetQueueDepth(const std::map<std::string, int64_t>& pending_by_priority) {
  for (const auto& [priority, count] : pending_by_priority) {
    queue_depth_.Add({{"priority", priority}}).Set(static_cast<double>(count));
  }
}

void SchedulerMetrics::SetCounts(const services::StoreCounts& counts) {
  for (int state = v1::RunState_MIN + 1; state <= v1::RunState_MAX; ++state) {
    std::string name = services::RunStateName(static_cast<v1::RunState>(state));
    auto it = counts.runs_by_state.find(name);
    runs_.Add({{"state", name}}).Set(it == counts.runs_by_state.end() ? 0 : it->second);
  }
  for (const char* state : {"ALIVE", "QUARANTINED", "LOST"}) {
    auto it = counts.workers_by_state.find(state);
    workers_.Add({{"state", state}}).Set(it == counts.workers_by_state.end() ? 0 : it->second);
  }
}

}  // namespace scalelab::scheduler
