// The preemption step of an admission pass (scheduler/admission.h): after Place, read what runs
// where (Store::ReadPreemptionState), let the policy choose victims (scheduler/preemption.h) and
// persist its decisions (Store::RequestPreemptions: the preemptor ADMITTED onto the victims'
// worker, a 'requested' preemptions row per victim), all before anyone acts on them.
#ifndef SCALELAB_SCHEDULER_PREEMPTION_PASS_H_
#define SCALELAB_SCHEDULER_PREEMPTION_PASS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scheduler/placement.h"
#include "scheduler/preemption.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

struct PreemptionStepResult {
  std::vector<int64_t> preemptors;  // run ids admitted onto their victims' workers
  int victims = 0;                  // preemptions rows written (one per victim attempt)
};

// Reads the store only when some unplaced run waits for resources and a lower class than its own
// exists. Unavailable when the store cannot be reached.
absl::StatusOr<PreemptionStepResult> RunPreemptionStep(services::Store& store,
                                                       const ClusterSnapshot& snapshot,
                                                       const PlacementResult& placed,
                                                       absl::Time now,
                                                       const PreemptionOptions& options);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_PREEMPTION_PASS_H_
