// The search loop: makes the runs of search sweeps as results arrive. Each pass reads the open
// searches from the store; for a sweep whose runs changed since it last looked, it reads the tree
// and the finished runs' objectives, asks the policy (search_policy.h) for up to
// parallel - in flight new configs within the budget, validates each (ValidateRunConfig through
// BuildPointRun: a config that fails is recorded as skipped, never stored) and stores the step
// (Store::AddSearchRuns). The search closes when its budget is spent, when the sweep was
// cancelled, or when it cannot find valid new points; the sweep then ends with its last run.
//
// Restart-safe and idempotent: the state lives in the store, the policy is a pure function of
// (tree, seed, step number), and a step is stored only if the sweep's step counter has not moved
// (Aborted otherwise), so a restarted scheduler, or two of them, never make a step twice.
//
// Woken by Wake() (the one entry point for "a run finished"; the daemon's event hook calls it) or
// every poll_interval, whichever comes first.
#ifndef SCALELAB_SCHEDULER_SEARCH_LOOP_H_
#define SCALELAB_SCHEDULER_SEARCH_LOOP_H_

#include <cstdint>
#include <map>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/sweep.pb.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

struct SearchLoopOptions {
  // Time between passes when nothing wakes the loop.
  absl::Duration poll_interval = absl::Seconds(1);
  // A search closes once this many generated configs, in total, failed validation (the space
  // and the base cannot make valid runs). 0 = max(20, 2 * budget).
  int max_skipped = 0;

  absl::Status Validate() const;
};

struct SearchPassResult {
  int sweeps_stepped = 0;  // sweeps whose state was read and acted on
  int runs_created = 0;
  int configs_skipped = 0;
  int searches_closed = 0;
};

// What a search objective ("val_loss", "eval:pass@1") reads in the store. InvalidArgument for
// a malformed one.
absl::StatusOr<services::SearchObjectiveQuery> ParseSearchObjective(const std::string& objective);

// The best run of a tree by the objective (0 when none has it); ties go to the earlier run.
int64_t BestSearchRun(const services::SearchState& state, bool maximize, double* best_objective);

// The search tree of a search sweep as SweepService.GetSearchTree answers it. NotFound: no such
// sweep; FailedPrecondition: the sweep is not a search.
absl::StatusOr<v1::GetSearchTreeResponse> ReadSearchTree(services::Store* store, int64_t sweep_id);

// Thread-safe: Wake from any thread; Start/Stop from the owner; RunOnce from the loop's thread
// or, with the thread not started, from a test.
class SearchLoop {
 public:
  SearchLoop(services::Store* store, SearchLoopOptions options)
      : store_(store), options_(options) {}
  ~SearchLoop() { Stop(); }

  void Start();
  void Stop();
  void Wake();

  // One pass over every open search.
  absl::StatusOr<SearchPassResult> RunOnce();
  // One step of one search sweep (also when nothing changed since the last look).
  absl::StatusOr<SearchPassResult> StepSweep(int64_t sweep_id);

 private:
  services::Store* store_;  // not owned
  const SearchLoopOptions options_;
  std::thread thread_;
  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Per sweep, its run counts by state when a pass last looked at it: a sweep reported again with
  // the same counts is not read further (only the loop's thread touches it).
  std::map<int64_t, std::string> seen_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SEARCH_LOOP_H_
