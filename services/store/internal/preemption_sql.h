// Private to the store: the preemption hooks other store files call (store_preemption.cc).
// Each is one clearly named predicate or step, so the lease, admission and snapshot code only
// gains a call, not the preemption rules.
#ifndef SCALELAB_SERVICES_STORE_INTERNAL_PREEMPTION_SQL_H_
#define SCALELAB_SERVICES_STORE_INTERNAL_PREEMPTION_SQL_H_

#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "scalelab/v1/worker.pb.h"
#include "services/store/placement_snapshot.h"

namespace scalelab::services::internal {

// SQL predicate, true for an ADMITTED run `run_alias` (e.g. "runs", "r") with no preemption
// victim attempt still running: only then may it be leased. A preemptor's victims end first.
std::string NoVictimRunningSql(absl::string_view run_alias);

// SQL expression: the time an ADMITTED run's admission counts from for the stale-admission
// requeue: admitted_at, or for a preemptor the end of its last victim (NULL while a victim still
// runs, which never compares as stale), so a preemptor is not requeued while its victims
// checkpoint.
std::string AdmissionClockSql(absl::string_view run_alias);

// The placement snapshot must not count a preemptor's admission twice: its victims' attempts
// hold the same GPUs and slots until they end. For each ADMITTED preemptor in `workers`' holds
// with victims still running on that worker, removes the victims' GPUs from its hold and their
// CPU slots from its slots (never below 0). Reads within `txn` (the snapshot's).
absl::Status DiscountPreemptorHolds(pqxx::work& txn, std::vector<StoredWorker>* workers);

// The attempts of `worker_id` with a preemption in flight, by run id (HeartbeatResponse.preempt).
absl::Status AppendPreemptionsOf(pqxx::work& txn, int64_t worker_id,
                                 std::vector<v1::RunAttempt>* preempt);

}  // namespace scalelab::services::internal

#endif  // SCALELAB_SERVICES_STORE_INTERNAL_PREEMPTION_SQL_H_
