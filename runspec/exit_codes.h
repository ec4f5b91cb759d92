// How an attempt ended, as the trainer's exit status, and the failure class the scheduler's retry
// policy reads. Defined once here and used by both sides: `scalelab-train` picks its exit code
// with ExitCodeForStatus, the worker classifies the exit with ClassifyExit.
#ifndef SCALELAB_RUNSPEC_EXIT_CODES_H_
#define SCALELAB_RUNSPEC_EXIT_CODES_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::runspec {

// Exit codes of scalelab-train.
inline constexpr int kExitOk = 0;
inline constexpr int kExitOtherError = 1;   // an uncaught error in the training code: user
inline constexpr int kExitInvalidSpec = 2;  // the spec or an override is invalid: user
inline constexpr int kExitDataError = 3;    // a token file is missing, short or unreadable: user
inline constexpr int kExitDiverged = 4;     // the loss became NaN/inf: user
inline constexpr int kExitOutOfMemory = 5;  // host or device allocation failed: retried
// A data-parallel rank lost its peers (one ended, or the rendezvous or a collective timed out):
// not this rank's fault; ClassifyExit reads it as SYSTEM_SOFTWARE like any other code.
inline constexpr int kExitPeerLost = 6;
// Preemption (issue 9): the trainer got SIGTERM, wrote a checkpoint at the next step boundary and
// stopped; ClassifyFailure reads it as PREEMPTED (requeued at once, no retry budget spent).
inline constexpr int kExitPreempted = 7;
inline constexpr int kExitExecFailed = 127;  // the worker could not start the trainer

// The exit code for a status from spec reading or training: InvalidArgument 2; NotFound,
// OutOfRange, DataLoss 3; Aborted 4; ResourceExhausted 5; Unavailable 6; Cancelled (a loop
// preempted by SIGTERM) 7; OK 0; anything else 1.
int ExitCodeForStatus(const absl::Status& status);

// The trainer's own verdict on a failed status, written as its last stdout line
// ({"record":"failure","class":"OUT_OF_MEMORY","message":"..."}) before it exits:
// ResourceExhausted -> OUT_OF_MEMORY; Cancelled -> PREEMPTED; a message naming NCCL or Gloo ->
// SYSTEM_SOFTWARE; a message naming a CUDA error (other than out of memory) -> HARDWARE_TRANSIENT;
// Unavailable -> SYSTEM_SOFTWARE; anything else -> USER.
scalelab::v1::FailureClass FailureClassForStatus(const absl::Status& status);
// That line, without the newline; the message is cut to 1,000 bytes.
std::string FormatFailureRecord(const absl::Status& status);

// How a trainer process ended, as the worker saw it, with the evidence it gathered.
struct TrainerExit {
  int exit_code = 0;    // valid when term_signal == 0
  int term_signal = 0;  // the signal that killed it, 0 when it exited
  // True when the worker itself signalled the child (cancellation, lost lease, shutdown).
  bool stopped_by_worker = false;
  // Kernel OOM kills in the trainer's memory cgroup while it ran (memory.events oom_kill
  // growth); -1 = unknown (no cgroup v2 counter readable).
  int64_t oom_kills = -1;
  // The trainer's failure record, when it wrote one (UNSPECIFIED = none).
  scalelab::v1::FailureClass reported_class = scalelab::v1::FAILURE_CLASS_UNSPECIFIED;
  std::string reported_message;
  // The worker's health checks that failed while the attempt ran ("gpu", "disk", "trainer"),
  // with their messages; empty = all passed.
  std::string failed_health_check;
  std::string health_message;
};

struct FailureClassification {
  scalelab::v1::FailureClass failure_class = scalelab::v1::FAILURE_CLASS_UNSPECIFIED;
  std::string evidence;  // what the class was decided from, for people and the store
};

// The failure class of an ended attempt, first rule that applies (UNSPECIFIED for exit 0):
//   stopped by the worker -> CANCELLED (the worker reports shutdowns as PREEMPTED itself);
//   the trainer's failure record -> its class (it knows a CUDA OOM from a bug);
//   a failed health check -> gpu: HARDWARE_TRANSIENT, others: SYSTEM_SOFTWARE;
//   SIGKILL not sent by the worker -> OUT_OF_MEMORY only with a recorded OOM kill, else
//     SYSTEM_SOFTWARE (another process, or the node, killed it);
//   SIGSEGV, SIGABRT, SIGFPE, SIGILL -> USER (the training code crashed);
//   SIGBUS -> HARDWARE_TRANSIENT; other signals -> SYSTEM_SOFTWARE;
//   exit 7 -> PREEMPTED; exit 1..4 -> USER; exit 5 -> OUT_OF_MEMORY; any other exit ->
//   SYSTEM_SOFTWARE.
FailureClassification ClassifyFailure(const TrainerExit& exit);
// ClassifyFailure(exit).failure_class.
scalelab::v1::FailureClass ClassifyExit(const TrainerExit& exit);

}  // namespace scalelab::runspec

#endif  // SCALELAB_RUNSPEC_EXIT_CODES_H_
