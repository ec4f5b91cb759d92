// Reliability arithmetic for training jobs: expected effective training time ratio (ETTR),
// checkpoint intervals, and what a list of attempts says about failures. Pure arithmetic, no
// I/O; all times in seconds unless a name says hours.
#ifndef SCALELAB_SERVICES_ANALYSIS_RELIABILITY_H_
#define SCALELAB_SERVICES_ANALYSIS_RELIABILITY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace scalelab::analysis {

// Expected ETTR of a job on n_nodes nodes that each fail at rate failures_per_node_s, restarts
// in restart_overhead_s (u0), writes a checkpoint in checkpoint_write_s (w) every
// checkpoint_interval_s (dt): on average a failure loses u0 plus half an interval, and
// checkpoints cost w per dt of progress:
//   ETTR = [1 - n r (u0 + dt/2)] / (1 + w/dt), clamped to [0, 1].
// NaN when dt is not positive or an input is negative or not finite.
double ExpectedEttr(int n_nodes, double failures_per_node_s, double restart_overhead_s,
                    double checkpoint_write_s, double checkpoint_interval_s);

// Young (1974): the checkpoint interval sqrt(2 w M) for write time w and job MTBF M.
// NaN unless w >= 0 and M > 0.
double YoungInterval(double checkpoint_write_s, double mtbf_s);

// Daly (2006), Young's interval with the higher-order correction:
//   sqrt(2 w M) (1 + (1/3) sqrt(w / (2M)) + (1/9) (w / (2M))) - w   for w < 2M, else M.
// NaN unless w >= 0 and M > 0.
double DalyInterval(double checkpoint_write_s, double mtbf_s);

// One attempt of one run, as the store records it. Attempts that neither succeeded nor failed
// (cancelled, still running) should be left out: every attempt here with succeeded = false is
// counted as a failure.
struct AttemptRecord {
  int64_t run_id = 0;
  int attempt = 0;
  int devices = 0;       // GPUs, or CPU slots for a CPU run
  int nodes = 1;         // hosts the attempt spanned
  double started_s = 0;  // wall clock (any epoch shared by all records)
  double ended_s = 0;
  bool succeeded = false;
  std::string failure_class;  // as recorded ("OUT_OF_MEMORY", "7", ...); "" = "unknown"
  // When each checkpoint was complete, seconds since started_s.
  std::vector<double> checkpoint_offsets_s;
};

struct RunReliability {
  int64_t run_id = 0;
  int attempts = 0;
  bool succeeded = false;  // its last attempt succeeded
  // First attempt's start to last attempt's end, restarts included.
  double wall_s = 0;
  // A successful attempt counts whole; a failed one up to its last checkpoint (0 without one):
  // the work after it is lost.
  double productive_s = 0;
  double ettr = 0;  // productive_s / wall_s; NaN when wall_s is 0
};

struct JobSizeReliability {
  int devices = 0;
  int attempts = 0;
  int failures = 0;
  double device_hours = 0;
  double mttf_device_hours = 0;  // device_hours / failures; NaN without failures
};

struct ReliabilityReport {
  std::vector<RunReliability> runs;  // by run_id
  std::map<std::string, int> failures_by_class;
  std::vector<JobSizeReliability> by_job_size;  // by devices, ascending
  int failures = 0;
  double node_hours = 0;
  double failures_per_node_hour = 0;  // NaN when node_hours is 0
  // Gaps between an attempt's end and the next attempt's start of the same run (negative gaps
  // from clock skew count as 0): the measured restart overhead u0.
  int restarts = 0;
  double mean_restart_overhead_s = 0;  // NaN without restarts
};

// InvalidArgument naming the record (run_id/attempt) and field for a non-finite time, an end
// before its start, devices < 0, nodes < 1, a checkpoint outside the attempt, or the same
// (run_id, attempt) twice.
absl::StatusOr<ReliabilityReport> AnalyseAttempts(absl::Span<const AttemptRecord> attempts);

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_RELIABILITY_H_
