// A PlacementState held in memory, for tests of the placement policy and, later, of the lease
// path without PostgreSQL. Commit and Finish play the store's part: Commit re-checks what a
// decision grants, as the store's FOR UPDATE SKIP LOCKED transaction will.
//
// Thread-safe.
#ifndef SCALELAB_TESTS_SCHEDULER_IN_MEMORY_PLACEMENT_STATE_H_
#define SCALELAB_TESTS_SCHEDULER_IN_MEMORY_PLACEMENT_STATE_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "scheduler/placement.h"
#include "scheduler/placement_state.h"
#include "scheduler/resources.h"

namespace scalelab::scheduler {

class InMemoryPlacementState final : public PlacementState {
 public:
  void AddWorker(WorkerState worker) {
    absl::MutexLock lock(&mu_);
    workers_.push_back(std::move(worker));
  }

  // Appends to the queue.
  void AddPending(RunRequest run) {
    absl::MutexLock lock(&mu_);
    pending_.push_back(std::move(run));
  }

  absl::StatusOr<ClusterSnapshot> Snapshot(int64_t requesting_worker) override {
    absl::MutexLock lock(&mu_);
    if (requesting_worker != 0 && FindWorker(requesting_worker) == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", requesting_worker, " is not registered; register again"));
    }
    return ClusterSnapshot{workers_, pending_, {}};
  }

  // Persists the decisions all or nothing. Aborted when a run is no longer pending or a GPU or
  // slot it grants is no longer free; nothing changes then.
  absl::Status Commit(const std::vector<PlacementDecision>& decisions) {
    absl::MutexLock lock(&mu_);
    std::vector<WorkerState> workers = workers_;
    std::vector<RunRequest> pending = pending_;
    for (const PlacementDecision& decision : decisions) {
      // A gang's ranks 1.. follow its rank 0, which took the run off the queue.
      auto run = std::find_if(pending.begin(), pending.end(),
                              [&](const RunRequest& r) { return r.run_id == decision.run_id; });
      if (decision.rank == 0 && run == pending.end()) {
        return absl::AbortedError(absl::StrCat("run ", decision.run_id, " is not pending"));
      }
      if (run != pending.end()) pending.erase(run);
      auto worker = std::find_if(workers.begin(), workers.end(), [&](const WorkerState& w) {
        return w.worker_id == decision.worker_id;
      });
      if (worker == workers.end()) {
        return absl::AbortedError(absl::StrCat("worker ", decision.worker_id, " is gone"));
      }
      if (absl::Status held = MarkHeld(*worker, decision.gpu_indices, decision.cpu_slots);
          !held.ok()) {
        return absl::AbortedError(held.message());
      }
    }
    workers_ = std::move(workers);
    pending_ = std::move(pending);
    for (const PlacementDecision& decision : decisions) {
      running_[decision.run_id].push_back(decision);
    }
    return absl::OkStatus();
  }

  // A committed run ended: its GPUs and slots (every rank's) are free again. NotFound when it is
  // not running.
  absl::Status Finish(int64_t run_id) {
    absl::MutexLock lock(&mu_);
    auto running = running_.find(run_id);
    if (running == running_.end()) {
      return absl::NotFoundError(absl::StrCat("run ", run_id, " is not running"));
    }
    for (const PlacementDecision& rank : running->second) {
      WorkerState* worker = FindWorker(rank.worker_id);
      if (worker == nullptr) continue;
      worker->cpu_slots_free += rank.cpu_slots;
      for (Gpu& gpu : worker->gpus) {
        const std::vector<int>& held = rank.gpu_indices;
        if (std::find(held.begin(), held.end(), gpu.index) != held.end()) gpu.free = true;
      }
    }
    running_.erase(running);
    return absl::OkStatus();
  }

 private:
  WorkerState* FindWorker(int64_t worker_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (WorkerState& worker : workers_) {
      if (worker.worker_id == worker_id) return &worker;
    }
    return nullptr;
  }

  absl::Mutex mu_;
  std::vector<WorkerState> workers_ ABSL_GUARDED_BY(mu_);
  std::vector<RunRequest> pending_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, std::vector<PlacementDecision>> running_ ABSL_GUARDED_BY(mu_);  // by run
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_TESTS_SCHEDULER_IN_MEMORY_PLACEMENT_STATE_H_
