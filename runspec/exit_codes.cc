#include "runspec/exit_codes.h"

#include <signal.h>

namespace scalelab::runspec {

int ExitCodeForStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitInvalidSpec;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kDataLoss:
      return kExitDataError;
    case absl::StatusCode::kAborted:
      return kExitDiverged;
    case absl::StatusCode::kResourceExhausted:
      return kExitOutOfMemory;
    case absl::StatusCode::kUnavailable:
      return kExitPeerLost;
    default:
      return kExitOtherError;
  }
}

scalelab::v1::FailureClass ClassifyExit(const TrainerExit& exit) {
  if (exit.stopped_by_worker) return scalelab::v1::FAILURE_CLASS_CANCELLED;
  if (exit.term_signal == 0) {
    if (exit.exit_code == kExitOk) return scalelab::v1::FAILURE_CLASS_UNSPECIFIED;
    // The trainer's own verdicts on the run: its code, its spec, its data or its divergence.
    if (exit.exit_code >= kExitOtherError && exit.exit_code <= kExitDiverged) {
      return scalelab::v1::FAILURE_CLASS_USER;
    }
    if (exit.exit_code == kExitOutOfMemory) return scalelab::v1::FAILURE_CLASS_OUT_OF_MEMORY;
    return scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE;  // 127: exec failed, or unknown
  }
  switch (exit.term_signal) {
    case SIGKILL:
      // Not sent by the worker: the kernel's OOM killer is by far the usual sender.
      return scalelab::v1::FAILURE_CLASS_OUT_OF_MEMORY;
    case SIGSEGV:
    case SIGABRT:
    case SIGFPE:
    case SIGILL:
      return scalelab::v1::FAILURE_CLASS_USER;
    case SIGBUS:
      return scalelab::v1::FAILURE_CLASS_HARDWARE_TRANSIENT;
    default:
      return scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE;
  }
}

}  // namespace scalelab::runspec
