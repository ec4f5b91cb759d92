#include "scheduler/retry_policy.h"

#include <catch2/catch.hpp>

#include "runspec/run_config.h"

namespace scalelab::scheduler {
namespace {

v1::Run RunAt(int attempt, int max_attempts) {
  v1::Run run;
  run.set_attempt(attempt);
  run.set_max_attempts(max_attempts);
  return run;
}

TEST_CASE("User faults fail the run at once; infrastructure faults retry while attempts last",
          "[scheduler][retry]") {
  CHECK(DecideAfterFailure(RunAt(1, 3), v1::FAILURE_CLASS_USER) == v1::RUN_STATE_FAILED);
  CHECK(DecideAfterFailure(RunAt(1, 3), v1::FAILURE_CLASS_UNSPECIFIED) == v1::RUN_STATE_FAILED);
  for (auto failure : {v1::FAILURE_CLASS_NODE_LOST, v1::FAILURE_CLASS_OUT_OF_MEMORY,
                       v1::FAILURE_CLASS_SYSTEM_SOFTWARE, v1::FAILURE_CLASS_HARDWARE_TRANSIENT,
                       v1::FAILURE_CLASS_HARDWARE_PERMANENT, v1::FAILURE_CLASS_PREEMPTED}) {
    CHECK(DecideAfterFailure(RunAt(1, 3), failure) == v1::RUN_STATE_PENDING);
    CHECK(DecideAfterFailure(RunAt(2, 3), failure) == v1::RUN_STATE_PENDING);
    CHECK(DecideAfterFailure(RunAt(3, 3), failure) == v1::RUN_STATE_FAILED);
  }
  CHECK(DecideAfterFailure(RunAt(1, 3), v1::FAILURE_CLASS_CANCELLED) == v1::RUN_STATE_CANCELLED);
  // max_attempts 0 means the one default the manifest and the store use too (3).
  CHECK(DecideAfterFailure(RunAt(1, 0), v1::FAILURE_CLASS_NODE_LOST) == v1::RUN_STATE_PENDING);
  CHECK(DecideAfterFailure(RunAt(runspec::kDefaultMaxAttempts, 0), v1::FAILURE_CLASS_NODE_LOST) ==
        v1::RUN_STATE_FAILED);
}

}  // namespace
}  // namespace scalelab::scheduler
