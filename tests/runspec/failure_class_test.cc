#include <signal.h>

#include <catch2/catch.hpp>

#include "runspec/exit_codes.h"

namespace scalelab::runspec {
namespace {

TrainerExit Killed(int signal_number, int64_t oom_kills = -1) {
  TrainerExit exit;
  exit.exit_code = -1;
  exit.term_signal = signal_number;
  exit.oom_kills = oom_kills;
  return exit;
}

TEST_CASE("SIGKILL is out of memory only with an OOM kill recorded by the kernel",
          "[runspec][failures]") {
  FailureClassification oom = ClassifyFailure(Killed(SIGKILL, 1));
  CHECK(oom.failure_class == v1::FAILURE_CLASS_OUT_OF_MEMORY);
  CHECK(oom.evidence.find("oom_kill grew by 1") != std::string::npos);
  FailureClassification other = ClassifyFailure(Killed(SIGKILL, 0));
  CHECK(other.failure_class == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  CHECK(other.evidence.find("no OOM kill") != std::string::npos);
  CHECK(ClassifyExit(Killed(SIGKILL, -1)) == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  CHECK(ClassifyExit(Killed(SIGSEGV)) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit(Killed(SIGABRT)) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit(Killed(SIGBUS)) == v1::FAILURE_CLASS_HARDWARE_TRANSIENT);
  TrainerExit stopped = Killed(SIGKILL, 1);
  stopped.stopped_by_worker = true;
  CHECK(ClassifyExit(stopped) == v1::FAILURE_CLASS_CANCELLED);
}

TEST_CASE("The trainer's own failure record and failed health checks decide before the exit",
          "[runspec][failures]") {
  // A CUDA error surfaces as exit 1 (user) by code; the trainer's record says what it was.
  TrainerExit exit;
  exit.exit_code = kExitOtherError;
  CHECK(ClassifyExit(exit) == v1::FAILURE_CLASS_USER);
  exit.reported_class = v1::FAILURE_CLASS_HARDWARE_TRANSIENT;
  exit.reported_message = "CUDA error: an illegal memory access was encountered";
  FailureClassification reported = ClassifyFailure(exit);
  CHECK(reported.failure_class == v1::FAILURE_CLASS_HARDWARE_TRANSIENT);
  CHECK(reported.evidence.find("illegal memory access") != std::string::npos);

  // A segfault while the GPU check fails is the node's, not the code's.
  TrainerExit crashed = Killed(SIGSEGV);
  crashed.failed_health_check = "gpu";
  crashed.health_message = "1 GPUs visible, 2 registered";
  FailureClassification hardware = ClassifyFailure(crashed);
  CHECK(hardware.failure_class == v1::FAILURE_CLASS_HARDWARE_TRANSIENT);
  CHECK(hardware.evidence.find("health check gpu failed") != std::string::npos);
  crashed.failed_health_check = "disk";
  CHECK(ClassifyExit(crashed) == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
}

TEST_CASE("The trainer's failure record names the class of its status", "[runspec][failures]") {
  CHECK(FailureClassForStatus(absl::ResourceExhaustedError("alloc")) ==
        v1::FAILURE_CLASS_OUT_OF_MEMORY);
  CHECK(FailureClassForStatus(absl::InternalError("NCCL error: unhandled system error")) ==
        v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  CHECK(FailureClassForStatus(absl::InternalError("CUDA error: unspecified launch failure")) ==
        v1::FAILURE_CLASS_HARDWARE_TRANSIENT);
  CHECK(FailureClassForStatus(absl::InvalidArgumentError("model.d_model")) ==
        v1::FAILURE_CLASS_USER);
  CHECK(FormatFailureRecord(absl::ResourceExhaustedError("out of \"memory\"\n")) ==
        "{\"record\":\"failure\",\"class\":\"OUT_OF_MEMORY\",\"message\":\"out of "
        "\\\"memory\\\"\\n\"}");
}

TEST_CASE("A trainer that checkpointed on SIGTERM and exited 7 is PREEMPTED",
          "[runspec][failures]") {
  CHECK(ExitCodeForStatus(absl::CancelledError("preempted at step 40 of 100")) == kExitPreempted);
  CHECK(FailureClassForStatus(absl::CancelledError("preempted")) == v1::FAILURE_CLASS_PREEMPTED);
  CHECK(FormatFailureRecord(absl::CancelledError("preempted")).find("\"class\":\"PREEMPTED\"") !=
        std::string::npos);
  TrainerExit exit;
  exit.exit_code = kExitPreempted;
  FailureClassification preempted = ClassifyFailure(exit);
  CHECK(preempted.failure_class == v1::FAILURE_CLASS_PREEMPTED);
  CHECK(preempted.evidence == "exit code 7: the trainer checkpointed and stopped on SIGTERM");
  // Cancelled by the worker stays CANCELLED even if the trainer checkpointed on the way out.
  exit.stopped_by_worker = true;
  CHECK(ClassifyExit(exit) == v1::FAILURE_CLASS_CANCELLED);
}

}  // namespace
}  // namespace scalelab::runspec
