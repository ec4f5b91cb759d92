#include "runspec/exit_codes.h"

#include <signal.h>

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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
    case absl::StatusCode::kCancelled:
      return kExitPreempted;
    default:
      return kExitOtherError;
  }
}

scalelab::v1::FailureClass FailureClassForStatus(const absl::Status& status) {
  if (status.ok()) return scalelab::v1::FAILURE_CLASS_UNSPECIFIED;
  if (status.code() == absl::StatusCode::kResourceExhausted) {
    return scalelab::v1::FAILURE_CLASS_OUT_OF_MEMORY;
  }
  if (status.code() == absl::StatusCode::kCancelled) return scalelab::v1::FAILURE_CLASS_PREEMPTED;
  const absl::string_view message = status.message();
  if (absl::StrContains(message, "NCCL") || absl::StrContains(message, "Gloo")) {
    return scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE;
  }
  if (absl::StrContains(message, "CUDA error")) {
    return absl::StrContains(message, "out of memory")
               ? scalelab::v1::FAILURE_CLASS_OUT_OF_MEMORY
               : scalelab::v1::FAILURE_CLASS_HARDWARE_TRANSIENT;
  }
  if (status.code() == absl::StatusCode::kUnavailable) {
    return scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE;
  }
  return scalelab::v1::FAILURE_CLASS_USER;
}

std::string FormatFailureRecord(const absl::Status& status) {
  constexpr size_t kMaxMessageBytes = 1000;
  absl::string_view message = status.message().substr(0, kMaxMessageBytes);
  std::string escaped;
  for (char c : message) {
    switch (c) {
      case '"':
        escaped += "\\\"";
        break;
      case '\\':
        escaped += "\\\\";
        break;
      case '\n':
        escaped += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          escaped += absl::StrFormat("\\u%04x", static_cast<int>(static_cast<unsigned char>(c)));
        } else {
          escaped += c;
        }
    }
  }
  return absl::StrCat("{\"record\":\"failure\",\"class\":\"",
                      scalelab::v1::FailureClass_Name(FailureClassForStatus(status)).substr(14),
                      "\",\"message\":\"", escaped, "\"}");
}

FailureClassification ClassifyFailure(const TrainerExit& exit) {
  using scalelab::v1::FailureClass;
  auto verdict = [](FailureClass failure_class, std::string evidence) {
    return FailureClassification{failure_class, std::move(evidence)};
  };
  if (exit.stopped_by_worker) {
    return verdict(scalelab::v1::FAILURE_CLASS_CANCELLED, "stopped by the worker");
  }
  if (exit.term_signal == 0 && exit.exit_code == kExitOk) return verdict({}, "");
  const std::string ended = exit.term_signal != 0
                                ? absl::StrCat("killed by signal ", exit.term_signal)
                                : absl::StrCat("exit code ", exit.exit_code);
  if (exit.reported_class != scalelab::v1::FAILURE_CLASS_UNSPECIFIED) {
    return verdict(exit.reported_class, absl::StrCat(ended, "; the trainer reported ",
                                                     FailureClass_Name(exit.reported_class), ": ",
                                                     exit.reported_message));
  }
  if (!exit.failed_health_check.empty()) {
    return verdict(exit.failed_health_check == "gpu"
                       ? scalelab::v1::FAILURE_CLASS_HARDWARE_TRANSIENT
                       : scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE,
                   absl::StrCat(ended, "; health check ", exit.failed_health_check,
                                " failed: ", exit.health_message));
  }
  if (exit.term_signal != 0) {
    switch (exit.term_signal) {
      case SIGKILL:
        if (exit.oom_kills > 0) {
          return verdict(scalelab::v1::FAILURE_CLASS_OUT_OF_MEMORY,
                         absl::StrCat(ended, "; the cgroup's memory.events oom_kill grew by ",
                                      exit.oom_kills));
        }
        return verdict(
            scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE,
            absl::StrCat(ended, " not sent by the worker; ",
                         exit.oom_kills == 0 ? "no OOM kill in the cgroup's memory.events"
                                             : "no cgroup OOM counter to read"));
      case SIGSEGV:
      case SIGABRT:
      case SIGFPE:
      case SIGILL:
        return verdict(scalelab::v1::FAILURE_CLASS_USER,
                       absl::StrCat(ended, ": the training code crashed"));
      case SIGBUS:
        return verdict(scalelab::v1::FAILURE_CLASS_HARDWARE_TRANSIENT, ended);
      default:
        return verdict(scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE, ended);
    }
  }
  if (exit.exit_code == kExitPreempted) {
    return verdict(scalelab::v1::FAILURE_CLASS_PREEMPTED,
                   absl::StrCat(ended, ": the trainer checkpointed and stopped on SIGTERM"));
  }
  // The trainer's own verdicts on the run: its code, its spec, its data or its divergence.
  if (exit.exit_code >= kExitOtherError && exit.exit_code <= kExitDiverged) {
    return verdict(scalelab::v1::FAILURE_CLASS_USER, ended);
  }
  if (exit.exit_code == kExitOutOfMemory) {
    return verdict(scalelab::v1::FAILURE_CLASS_OUT_OF_MEMORY, ended);
  }
  return verdict(scalelab::v1::FAILURE_CLASS_SYSTEM_SOFTWARE, ended);  // 127: exec failed
}

scalelab::v1::FailureClass ClassifyExit(const TrainerExit& exit) {
  return ClassifyFailure(exit).failure_class;
}

}  // namespace scalelab::runspec
