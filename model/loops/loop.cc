#include "model/loops/loop.h"

#include <signal.h>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "model/loops/eval_loop.h"
#include "model/loops/grpo_loop.h"
#include "model/loops/pretrain_loop.h"
#include "model/loops/sft_loop.h"

namespace scalelab::model {

namespace {
// Lock-free, so setting it from a signal handler is safe.
std::atomic<bool> preemption_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnTerminate(int) { preemption_requested.store(true, std::memory_order_relaxed); }
}  // namespace

bool PreemptionRequested() { return preemption_requested.load(std::memory_order_relaxed); }
void RequestPreemption() { preemption_requested.store(true, std::memory_order_relaxed); }
void ClearPreemptionRequest() { preemption_requested.store(false, std::memory_order_relaxed); }

void InstallPreemptionHandler() {
  struct sigaction action {};
  action.sa_handler = &OnTerminate;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a blocking read in the data path simply continues
  ::sigaction(SIGTERM, &action, nullptr);
}

bool LoopHonoursPreemption(scalelab::v1::RunKind kind) {
  return kind == scalelab::v1::RUN_KIND_PRETRAIN || kind == scalelab::v1::RUN_KIND_SFT;
}

absl::StatusOr<LoopFn> LoopForKind(scalelab::v1::RunKind kind) {
  switch (kind) {
    case scalelab::v1::RUN_KIND_PRETRAIN:
      return &RunPretrainLoop;
    case scalelab::v1::RUN_KIND_SFT:
      return &RunSftLoop;
    case scalelab::v1::RUN_KIND_GRPO:
      return &RunGrpoLoop;
    case scalelab::v1::RUN_KIND_EVAL:
      return &RunEvalLoop;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "kind: expected a run kind such as RUN_KIND_PRETRAIN, got ", static_cast<int>(kind)));
  }
}

}  // namespace scalelab::model
