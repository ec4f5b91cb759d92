#include "scheduler/leasing.h"

#include <algorithm>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "scheduler/admission.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {

absl::StatusOr<std::vector<v1::Lease>> GrantLeases(PlacementState& state, services::Store& store,
                                                   int64_t worker_id, int free_slots,
                                                   absl::Time now, absl::Duration lease_ttl,
                                                   const PlacementOptions& options,
                                                   const services::RendezvousPorts& ports) {
  {
    // Passes of this process never overlap: AdmitRuns does not re-check holds.
    static absl::Mutex pass_mu(absl::kConstInit);
    absl::MutexLock lock(&pass_mu);
    absl::StatusOr<AdmissionPass> pass = RunAdmissionPass(state, store, now, options);
    if (!pass.ok()) return pass.status();
  }
  absl::StatusOr<std::vector<v1::Lease>> leases =
      store.LeaseAdmitted(worker_id, std::max(free_slots, 0), now, lease_ttl, ports);
  if (leases.ok() && !leases->empty()) {
    spdlog::debug("worker {}: {} admitted runs leased", worker_id, leases->size());
  }
  return leases;
}

}  // namespace scalelab::scheduler
