// The fitter: finds sweeps whose fit groups have finished since they were last fitted, fits each
// finished group (scheduler/fitting.h) and stores the fits. Runs on its own thread in the
// scheduler daemon, one pass every FitterOptions::interval; a pass is also what tests call.
//
// Restart-safe by construction: what needs fitting is read from the store each pass (the store
// answers which sweeps changed after their newest fit), so a scheduler killed mid-fit refits on
// its next start. A group is fitted once all its runs are terminal; a sweep with groups still
// running is looked at again only when one of its runs changes.
#ifndef SCALELAB_SCHEDULER_FITTER_H_
#define SCALELAB_SCHEDULER_FITTER_H_

#include <cstdint>
#include <map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scheduler/fitting.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

struct FitterOptions {
  // Time between passes of the daemon's fitter thread.
  absl::Duration interval = absl::Seconds(2);
  // Sweeps looked at per pass.
  int max_sweeps_per_pass = 20;
  // Threads and seed of each fit (grid starts and bootstrap refits).
  FitSettings settings;

  absl::Status Validate() const;
};

struct FitPassResult {
  int sweeps_examined = 0;
  int groups_fitted = 0;  // rows written, with or without a usable fit
};

// Thread-compatible: one thread calls RunOnce at a time (the daemon's fitter thread, or a test).
class Fitter {
 public:
  Fitter(services::Store* store, FitterOptions options) : store_(store), options_(options) {}

  absl::StatusOr<FitPassResult> RunOnce();

  // Fits every finished group of one sweep whose fit is missing or older than its runs.
  absl::StatusOr<int> FitSweep(int64_t sweep_id);

 private:
  services::Store* store_;  // not owned
  FitterOptions options_;
  // Per sweep, the newest run update already examined: a sweep the store reports again with
  // no newer update (its unfinished groups still running) is skipped without reading its runs.
  std::map<int64_t, absl::Time> examined_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_FITTER_H_
