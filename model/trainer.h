// The training runtime's entry point: one run of a validated RunSpec, start to finish.

#ifndef SCALELAB_MODEL_TRAINER_H_
#define SCALELAB_MODEL_TRAINER_H_

#include <ostream>

#include "absl/status/statusor.h"
#include "model/loops/loop.h"
#include "model/metrics.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

// Runs `spec` to completion: checks it with runspec::ValidateRunSpec (the caller applies
// runspec::ApplySpecDefaults and ResolveDataFolders first), sets LibTorch's (and OpenBLAS's)
// thread counts for the process, seeds torch with train.seed, builds the model
// (model/registry.h), and hands over to the loop of spec.kind() (model/loops/loop.h). When
// spec.checkpoint_dir holds a readable checkpoint (an earlier attempt's), the loop resumes from
// the newest one and the init weights are not read; otherwise it loads
// spec.init_artifact().location() when set and starts at step 0. Blocks the calling thread.
// `log`, when given, gets short human-readable lines (start, resume, skipped checkpoints, end).
//
// Errors (no exception escapes; LibTorch errors are translated here), each mapped to an exit code
// by runspec::ExitCodeForStatus:
//   kInvalidArgument   the spec fails validation, execution.device "cuda" without CUDA,
//                      train.precision "bf16" on the CPU, init weights or a checkpoint of
//                      another shape;
//   kUnimplemented     a run kind without a loop;
//   kNotFound, kOutOfRange, kDataLoss   a token file or the init weights file is missing, too
//                      short or unreadable;
//   kAborted           the training diverged (loss NaN/inf or above divergence_factor x the
//                      best smoothed loss); the run stopped at once;
//   kResourceExhausted out of host or device memory (retried by the scheduler);
//   kInternal          any other LibTorch or C++ error, or a checkpoint or final.pt not writable.
absl::StatusOr<TrainSummary> Train(const scalelab::v1::RunSpec& spec, MetricSink& sink,
                                   std::ostream* log = nullptr);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TRAINER_H_
