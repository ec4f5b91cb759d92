// Carbon and reliability reports of a sweep (or the whole cluster) from what the store recorded:
// each run's summed energy report and each attempt's times, failure class and checkpoints. Pure
// functions; the arithmetic is the analysis library's (services/analysis/carbon.h,
// reliability.h), the ResultsService handlers read the store and call these.
#ifndef SCALELAB_SCHEDULER_REPORTS_H_
#define SCALELAB_SCHEDULER_REPORTS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/results.pb.h"
#include "services/analysis/carbon.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

// Per run: energy (measured, or the power model's estimate when the worker measured nothing),
// operational and embodied CO2e, and grams per nat of loss improvement over a uniform guess
// (ln vocab_size - final val_loss); totals over the runs. `assumptions` must be valid.
v1::CarbonReport BuildCarbonReport(int64_t sweep_id, const std::vector<v1::Run>& runs,
                                   const analysis::CarbonAssumptions& assumptions);

struct ReliabilityAssumptions {
  // Seconds to write one checkpoint (w) when none was measured. Our checkpoints of small models
  // take well under a second; 30 s is the order of a multi-GB sharded checkpoint to shared
  // storage, and what the expected ETTR and the Young/Daly interval use.
  double checkpoint_write_s = 30;
};

// Failures by class, MTTF by job size (devices per attempt), each run's measured ETTR beside the
// study's expected ETTR for its size and checkpoint interval, and the Daly checkpoint interval
// for the measured failure rate. Attempts still running and cancelled ones are left out.
absl::StatusOr<v1::ReliabilityReport> BuildReliabilityReport(
    const std::vector<services::AttemptRecord>& attempts,
    const ReliabilityAssumptions& assumptions);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_REPORTS_H_
