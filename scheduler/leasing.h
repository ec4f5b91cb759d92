// The synchronous lease path: one admission pass (scheduler/admission.h), then the asking
// worker's admitted runs are leased to it.
//
//   RunAdmissionPass (Snapshot -> Place -> Store::AdmitRuns) -> Store::LeaseAdmitted
//
// The daemon's LeaseRuns does not plan per call: its Admitter's cycle admits, and LeaseRuns only
// calls Store::LeaseAdmitted. This function is for tests and tools that drive leasing by hand.
#ifndef SCALELAB_SCHEDULER_LEASING_H_
#define SCALELAB_SCHEDULER_LEASING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scalelab/v1/worker.pb.h"
#include "scheduler/placement.h"
#include "scheduler/placement_state.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

// Admits what fits now (passes of this process are serialized), then leases to `worker_id` at
// most `free_slots` of the runs admitted to it, oldest admission first; the rest stay ADMITTED
// for its next call. Each lease
// carries the granted GPUs in spec.execution.gpu_indices. Empty when free_slots <= 0 or nothing
// fits. FailedPrecondition when the worker is unknown or LOST (it must register again);
// Unavailable when the store cannot be reached. Thread-safe when `state` and `store` are.
// A gang's ranks get their rendezvous from `ports` (Store::LeaseAdmitted).
absl::StatusOr<std::vector<v1::Lease>> GrantLeases(PlacementState& state, services::Store& store,
                                                   int64_t worker_id, int free_slots,
                                                   absl::Time now, absl::Duration lease_ttl,
                                                   const PlacementOptions& options,
                                                   const services::RendezvousPorts& ports = {});

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_LEASING_H_
