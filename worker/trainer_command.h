// The worker's side of the run contract with `scalelab-train`: the leased RunSpec completed for
// this node and written into the attempt folder, the command line and environment that start the
// trainer, the trainer's stdout lines (metrics, artifacts, run records), and its exit as a
// FailureClass.
// The fields of the run itself are never spelled out here: the spec travels whole, and its
// defaults and rules live in runspec/.
#ifndef SCALELAB_WORKER_TRAINER_COMMAND_H_
#define SCALELAB_WORKER_TRAINER_COMMAND_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/eval.pb.h"
#include "worker/child_process.h"

namespace scalelab::worker {

struct TrainerInvocation {
  std::string trainer_path;  // the scalelab-train binary
  std::string data_root;     // relative data source folders are resolved against it
  int threads = 1;           // intra-op threads of the trainer
};

// The lease's spec completed for this node: data folders and task files (sft/grpo tasks.path,
// eval.tasks.tasks.path, eval.tasks.suite) made absolute against data_root,
// output_dir = `attempt_dir`, checkpoint_dir = `checkpoint_dir`, execution.threads, and
// execution.device "cuda" when the placement gave it GPUs, else "cpu". Then validated with
// runspec::ValidateRunSpec, so a spec the trainer would refuse is caught before it starts
// (InvalidArgument naming the field).
absl::StatusOr<v1::RunSpec> CompleteRunSpec(const TrainerInvocation& invocation,
                                            const v1::RunSpec& leased,
                                            const std::string& attempt_dir,
                                            const std::string& checkpoint_dir);

// argv of one attempt: {trainer_path, "--spec=<spec_path>"}.
std::vector<std::string> BuildTrainerArgv(const TrainerInvocation& invocation,
                                          const std::string& spec_path);

// Environment the trainer needs on top of the worker's: CUDA_VISIBLE_DEVICES listing the node
// GPUs the run was placed on ("" for a CPU run, so it never sees a GPU it was not given).
std::vector<std::pair<std::string, std::string>> TrainerEnvironment(const v1::RunSpec& spec);

// One stdout line of the trainer (model/metrics.h writes them): a metric
//   {"step":12,"tokens":49152,"name":"train_loss","value":3.12,"wall_time_s":1.2}
// an artifact it wrote
//   {"artifact":"final","path":"/abs/run-1-1/final.pt","step":120}
// or its run record as it stands (at start with tokens 0, at the end with the tokens trained)
//   {"record":"run","family":"transformer","n_params":85248,"n_params_total":101632,
//    "flops_per_token":523776,"tokens":20480,"flops":10726932480}
// or an evaluation result, the metric's name under "eval" (low/high absent or null: no interval)
//   {"eval":"pass@k","step":200,"task_set":"addition-3d","split":"test","category":"",
//    "n":16,"k":4,"value":0.8125,"low":0.75,"high":0.875,"problems":200}
// Exactly one member is set.
// The trainer's own verdict on its failure ({"record":"failure","class":...,"message":...}).
struct TrainerFailure {
  v1::FailureClass failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  std::string message;
};

struct TrainerLine {
  std::optional<TrainerFailure> failure;
  std::optional<v1::MetricPoint> metric;
  std::optional<v1::Artifact> artifact;  // kind, location, step; size and checksum unset
  std::optional<v1::RunRecord> record;
  std::optional<v1::EvalResult> eval;  // checked with runspec::ValidateEvalResult
};

// A line is an artifact, a record or an evaluation result by its "artifact", "record" or "eval"
// key, else a metric. Unknown keys are ignored (a newer trainer may add some). InvalidArgument
// for anything else, e.g. a record with a negative or fractional count, or an evaluation result
// that breaks runspec::ValidateEvalResult, naming the field (the worker logs and skips such
// lines).
absl::StatusOr<TrainerLine> ParseTrainerLine(absl::string_view line);

// Fills size_bytes and sha256 from the file at artifact.location. NotFound when it is missing.
absl::Status DescribeArtifactFile(v1::Artifact* artifact);

// runspec::ClassifyExit of an ended child. `stopped_by_worker` is true when the worker itself
// signalled it.
v1::FailureClass ClassifyExit(const ExitInfo& exit, bool stopped_by_worker);

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_TRAINER_COMMAND_H_
