#include "scheduler/preemption_pass.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

#include "scheduler/resources.h"

namespace scalelab::scheduler {
namespace {

RunningAttempt FromStored(const services::StoredRunningAttempt& stored) {
  RunningAttempt attempt;
  attempt.run_id = stored.run_id;
  attempt.attempt = stored.attempt;
  attempt.sweep_id = stored.sweep_id;
  attempt.worker_id = stored.worker_id;
  attempt.priority =
      static_cast<int>(PriorityClassFromName(stored.priority).value_or(PriorityClass::kNormal));
  attempt.gpu_indices = stored.gpu_indices;
  attempt.cpu_slots = stored.cpu_slots;
  attempt.started_at = stored.started_at;
  attempt.last_checkpoint_at = stored.last_checkpoint_at;
  attempt.last_preempted_at = stored.last_preempted_at;
  attempt.preempt_requested = stored.preempt_requested;
  return attempt;
}

}  // namespace

absl::StatusOr<PreemptionStepResult> RunPreemptionStep(services::Store& store,
                                                       const ClusterSnapshot& snapshot,
                                                       const PlacementResult& placed,
                                                       absl::Time now,
                                                       const PreemptionOptions& options) {
  PreemptionStepResult admitted;
  if (!options.enabled) return admitted;
  // Only classes below the highest waiting run's can lose a run; none waiting, nothing to read.
  std::unordered_map<int64_t, int> priority_of;
  priority_of.reserve(snapshot.pending.size());
  for (const RunRequest& run : snapshot.pending) priority_of[run.run_id] = run.priority;
  int highest_waiting = -1;
  for (const UnplacedRun& unplaced : placed.unplaced) {
    if (unplaced.reason != UnplacedReason::kWaitingForResources &&
        unplaced.reason != UnplacedReason::kHoldingReservation) {
      continue;
    }
    auto found = priority_of.find(unplaced.run_id);
    if (found != priority_of.end()) highest_waiting = std::max(highest_waiting, found->second);
  }
  std::vector<std::string> victim_classes;
  for (int priority = 0; priority < highest_waiting && priority < kPriorityClassCount; ++priority) {
    victim_classes.push_back(PriorityClassName(static_cast<PriorityClass>(priority)));
  }
  if (victim_classes.empty()) return admitted;

  absl::StatusOr<services::StoredPreemptionState> stored =
      store.ReadPreemptionState(victim_classes);
  if (!stored.ok()) return stored.status();
  PreemptionInput input;
  input.workers = WorkersAfterPlacement(snapshot, placed.placed);
  input.running.reserve(stored->running.size());
  for (const services::StoredRunningAttempt& attempt : stored->running) {
    input.running.push_back(FromStored(attempt));
  }
  for (const services::StoredInFlightPreemptor& preemptor : stored->in_flight) {
    input.in_flight.push_back(InFlightPreemptor{preemptor.run_id, preemptor.worker_id,
                                                preemptor.gpu_indices, preemptor.cpu_slots});
  }
  std::vector<PreemptionDecision> decisions =
      PlanPreemptions(input, snapshot.pending, placed.unplaced, now, options);
  if (decisions.empty()) return admitted;
  std::vector<services::PreemptionRequest> requests;
  requests.reserve(decisions.size());
  for (PreemptionDecision& decision : decisions) {
    services::PreemptionRequest request;
    request.preemptor_run_id = decision.preemptor_run_id;
    request.worker_id = decision.worker_id;
    request.gpu_indices = std::move(decision.gpu_indices);
    request.cpu_slots = decision.cpu_slots;
    for (const PreemptionVictim& victim : decision.victims) {
      request.victims.push_back({victim.run_id, victim.attempt});
    }
    request.reason = std::move(decision.reason);
    requests.push_back(std::move(request));
  }
  absl::StatusOr<std::vector<int64_t>> preemptors = store.RequestPreemptions(requests, now);
  if (!preemptors.ok()) return preemptors.status();
  for (const services::PreemptionRequest& request : requests) {
    if (std::find(preemptors->begin(), preemptors->end(), request.preemptor_run_id) !=
        preemptors->end()) {
      admitted.victims += static_cast<int>(request.victims.size());
    }
  }
  admitted.preemptors = *std::move(preemptors);
  return admitted;
}

}  // namespace scalelab::scheduler
