// What every training loop gets and returns, and the dispatch from RunSpec.kind to its loop.
// One loop per run kind (PRETRAIN, SFT, GRPO and EVAL), each in its own file here,
// built from the shared pieces in model/: optimizer.h, lr_schedule.h, batches.h, evaluation.h,
// checkpoint.h and metrics.h. Torch-free header.

#ifndef SCALELAB_MODEL_LOOPS_LOOP_H_
#define SCALELAB_MODEL_LOOPS_LOOP_H_

#include <chrono>
#include <cstdint>
#include <iosfwd>

#include "absl/status/statusor.h"
#include "model/metrics.h"
#include "model/train_plan.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

class CausalLM;
class DataParallelGroup;

// Seconds of the steady clock since `start`.
inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class SavedTrainState;

struct TrainSummary {
  int64_t steps = 0;              // The plan's steps (a resumed run's included).
  int64_t tokens = 0;             // Training tokens consumed, a resumed run's earlier ones too.
  int64_t n_params = 0;           // Non-embedding parameters.
  int64_t n_params_total = 0;     // All parameters (tied embedding once).
  double flops_per_token = 0;     // CausalLM::FlopsPerToken().
  double final_train_loss = 0;    // Nats/token, last reporting interval.
  double final_val_loss = 0;      // Nats/token, mixture-weighted, at the last step.
  double wall_time_s = 0;         // Whole call, loading and evaluation included.
  double train_tokens_per_s = 0;  // Training tokens over training time, this call's only.
  std::string final_weights;      // Absolute path of final.pt; empty when not saved.
};

// Everything a loop runs on. Not owned; valid for the duration of the loop call.
struct LoopContext {
  const scalelab::v1::RunSpec& spec;  // Validated, defaults applied.
  const TrainPlan& plan;              // PlanFor(spec).
  CausalLM& model;                    // Built, on the plan's device, init weights loaded.
  bool from_init_weights;             // The model holds spec.init_artifact's weights.
  MetricSink& sink;
  std::ostream* log;  // Two human-readable lines (start, end) when not null.
  std::chrono::steady_clock::time_point start;  // Metric wall_time_s counts from here.
  // The checkpoint to continue from (model/checkpoint.h), or null to start at step 0. When set,
  // the loop restores the model, optimizer, RNG and its counters from it, trains only the steps
  // after it and reports metrics only for those.
  SavedTrainState* resume = nullptr;
  // The data-parallel group when execution.world_size > 1 (model/dist.h), else null. Only the
  // pretraining loop takes one (runspec refuses world_size > 1 for other kinds). Every rank runs
  // the loop; rank 0 alone reports metrics and writes checkpoints and final weights (the other
  // ranks' `sink` discards), and rank 0 alone validates.
  DataParallelGroup* group = nullptr;
};

// A loop trains to completion or to the first error (statuses as Train() in model/trainer.h).
using LoopFn = absl::StatusOr<TrainSummary> (*)(const LoopContext& context);

// The loop of `kind`. kInvalidArgument for RUN_KIND_UNSPECIFIED or an unknown kind.
absl::StatusOr<LoopFn> LoopForKind(scalelab::v1::RunKind kind);

// Preemption (issue 9). The loops that checkpoint (pretraining and SFT) look at this request
// after each completed step: when set (and the step is not the last), they write a checkpoint of
// that step (unless one was just written), report it and the run record, and return kCancelled
// ("preempted at step N"), which scalelab-train exits with runspec::kExitPreempted (7).
// Data-parallel ranks agree on the step (a request on any rank stops all of them there).
// Process-wide and async-signal-safe to set.
bool PreemptionRequested();
void RequestPreemption();       // what the SIGTERM handler does; tests call it directly
void ClearPreemptionRequest();  // tests
// Makes SIGTERM call RequestPreemption() instead of ending the process. scalelab-train installs
// it for run kinds whose loop honours the request (LoopHonoursPreemption); others keep SIGTERM's
// default, so they still stop at once.
void InstallPreemptionHandler();
bool LoopHonoursPreemption(scalelab::v1::RunKind kind);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_LOOPS_LOOP_H_
