// What the store hands the scheduler's preemption policy (scheduler/preemption.h) and what it
// takes back: stored facts about running attempts and preemptions in flight, and the decisions
// to persist. Plain values; the store decides nothing (store_preemption.cc).
#ifndef SCALELAB_SERVICES_STORE_PREEMPTION_ROWS_H_
#define SCALELAB_SERVICES_STORE_PREEMPTION_ROWS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace scalelab::services {

// One LEASED or RUNNING attempt on an ALIVE or QUARANTINED worker.
struct StoredRunningAttempt {
  int64_t run_id = 0;
  int32_t attempt = 0;
  int64_t sweep_id = 0;
  int64_t worker_id = 0;
  std::string priority = "normal";  // its sweep's class
  std::vector<int> gpu_indices;
  int cpu_slots = 0;
  absl::Time started_at = absl::InfinitePast();
  absl::Time last_checkpoint_at = absl::InfinitePast();  // its run's newest checkpoint artifact
  absl::Time last_preempted_at = absl::InfinitePast();   // the run's newest preemptions row
  bool preempt_requested = false;                        // a 'requested' row names this attempt
};

// An ADMITTED preemptor with a victim attempt still LEASED or RUNNING.
struct StoredInFlightPreemptor {
  int64_t run_id = 0;
  int64_t worker_id = 0;
  std::vector<int> gpu_indices;
  int cpu_slots = 0;
};

struct StoredPreemptionState {
  std::vector<StoredRunningAttempt> running;       // by run id
  std::vector<StoredInFlightPreemptor> in_flight;  // by run id
};

// One decision of the preemption policy: admit `preemptor_run_id` onto `worker_id` with these
// resources and ask each victim attempt to stop.
struct PreemptionRequest {
  int64_t preemptor_run_id = 0;
  int64_t worker_id = 0;
  std::vector<int> gpu_indices;
  int cpu_slots = 1;
  struct Victim {
    int64_t run_id = 0;
    int32_t attempt = 0;
  };
  std::vector<Victim> victims;
  std::string reason;
};

// A row of the preemptions table.
struct PreemptionRecord {
  int64_t id = 0;
  int64_t preemptor_run_id = 0;
  int64_t victim_run_id = 0;
  int32_t victim_attempt = 0;
  int64_t worker_id = 0;
  std::string reason;
  std::string state;  // "requested" | "done"
  absl::Time requested_at;
  absl::Time victim_ended_at = absl::InfinitePast();  // InfinitePast while the victim runs
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_PREEMPTION_ROWS_H_
