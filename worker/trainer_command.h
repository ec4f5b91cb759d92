// The contract between the worker and `scalelab-train`: RunConfig -> command line, stdout
// JSON lines -> MetricPoint, exit status -> FailureClass. The trainer knows nothing of protos;
// this file is the only place that knows both sides.
#ifndef SCALELAB_WORKER_TRAINER_COMMAND_H_
#define SCALELAB_WORKER_TRAINER_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scalelab/v1/common.pb.h"
#include "worker/child_process.h"

namespace scalelab::worker {

struct TrainerInvocation {
  std::string trainer_path;  // the scalelab-train binary
  std::string data_root;     // relative data source folders are resolved against it
  int threads = 1;           // intra-op threads of the trainer
};

// argv for one attempt of a run. InvalidArgument when the config names no data source.
absl::StatusOr<std::vector<std::string>> BuildTrainerArgv(const TrainerInvocation& invocation,
                                                          const v1::RunConfig& config);

// One stdout line of the trainer, e.g.
//   {"step":12,"tokens":49152,"name":"train_loss","value":3.12,"wall_time_s":1.2}
// InvalidArgument for anything else (the worker logs and skips such lines).
absl::StatusOr<v1::MetricPoint> ParseMetricLine(absl::string_view line);

// Exit codes of scalelab-train: 0 ok, 1 uncaught error, 2 bad options, 3 data error,
// 4 divergence. `stopped_by_worker` is true when the worker itself signalled the child.
v1::FailureClass ClassifyExit(const ExitInfo& exit, bool stopped_by_worker);

}  // namespace scalelab::worker

#endif  // SCALELAB_WORKER_TRAINER_COMMAND_H_
