#include "scheduler/retry_policy.h"

#include <catch2/catch.hpp>

#include "runspec/run_config.h"

namespace scalelab::scheduler {
namespace {

using Budget = services::RetryDecision::Budget;

v1::Run RunWith(int max_attempts, int64_t id = 7) {
  v1::Run run;
  run.set_id(id);
  run.set_attempt(1);
  run.set_max_attempts(max_attempts);
  return run;
}

services::RetryCounts Counts(int infra, int oom = 0) { return {infra, oom}; }

TEST_CASE("User faults fail the run at once; infrastructure faults retry while the budget lasts",
          "[scheduler][retry]") {
  CHECK(DecideAfterFailure(RunWith(3), v1::FAILURE_CLASS_USER, Counts(0)).next ==
        v1::RUN_STATE_FAILED);
  CHECK(DecideAfterFailure(RunWith(3), v1::FAILURE_CLASS_UNSPECIFIED, Counts(0)).next ==
        v1::RUN_STATE_FAILED);
  for (auto failure :
       {v1::FAILURE_CLASS_NODE_LOST, v1::FAILURE_CLASS_SYSTEM_SOFTWARE,
        v1::FAILURE_CLASS_HARDWARE_TRANSIENT, v1::FAILURE_CLASS_HARDWARE_PERMANENT}) {
    INFO(v1::FailureClass_Name(failure));
    const services::RetryDecision first = DecideAfterFailure(RunWith(3), failure, Counts(0));
    CHECK(first.next == v1::RUN_STATE_PENDING);
    CHECK(first.avoid_worker);
    CHECK(first.spends == Budget::kInfra);
    CHECK(DecideAfterFailure(RunWith(3), failure, Counts(1)).next == v1::RUN_STATE_PENDING);
    // max_attempts 3 = the first attempt and two retries.
    CHECK(DecideAfterFailure(RunWith(3), failure, Counts(2)).next == v1::RUN_STATE_FAILED);
  }
  CHECK(DecideAfterFailure(RunWith(3), v1::FAILURE_CLASS_CANCELLED, Counts(0)).next ==
        v1::RUN_STATE_CANCELLED);
  // max_attempts 0 means the one default the manifest and the store use too (3).
  CHECK(DecideAfterFailure(RunWith(0), v1::FAILURE_CLASS_NODE_LOST, Counts(0)).next ==
        v1::RUN_STATE_PENDING);
  CHECK(DecideAfterFailure(RunWith(0), v1::FAILURE_CLASS_NODE_LOST,
                           Counts(runspec::kDefaultMaxAttempts - 1))
            .next == v1::RUN_STATE_FAILED);
}

TEST_CASE("Preemption requeues at once without spending a budget; out of memory retries once",
          "[scheduler][retry]") {
  // However many infrastructure retries were spent, a preempted run goes back to the queue.
  const services::RetryDecision preempted =
      DecideAfterFailure(RunWith(3), v1::FAILURE_CLASS_PREEMPTED, Counts(2, 1));
  CHECK(preempted.next == v1::RUN_STATE_PENDING);
  CHECK(preempted.spends == Budget::kNone);
  CHECK(preempted.backoff == absl::ZeroDuration());
  CHECK_FALSE(preempted.avoid_worker);

  const services::RetryDecision oom =
      DecideAfterFailure(RunWith(3), v1::FAILURE_CLASS_OUT_OF_MEMORY, Counts(0, 0));
  CHECK(oom.next == v1::RUN_STATE_PENDING);
  CHECK(oom.spends == Budget::kOom);
  CHECK(oom.avoid_worker);
  CHECK(DecideAfterFailure(RunWith(3), v1::FAILURE_CLASS_OUT_OF_MEMORY, Counts(0, 1)).next ==
        v1::RUN_STATE_FAILED);
  // The budgets are separate: an OOM retry leaves the infrastructure budget whole.
  CHECK(DecideAfterFailure(RunWith(3), v1::FAILURE_CLASS_NODE_LOST, Counts(0, 1)).next ==
        v1::RUN_STATE_PENDING);
}

TEST_CASE("Backoff doubles per retry, is capped, and its jitter is deterministic in [0.5, 1]",
          "[scheduler][retry]") {
  RetryOptions options;
  options.base_backoff = absl::Seconds(10);
  options.max_backoff = absl::Seconds(60);
  for (int64_t run_id : {1, 2, 99}) {
    for (int retry = 1; retry <= 6; ++retry) {
      const absl::Duration full =
          std::min(absl::Seconds(10) * (int64_t{1} << (retry - 1)), absl::Seconds(60));
      const absl::Duration backoff = RetryBackoff(options, run_id, retry);
      INFO("run " << run_id << " retry " << retry << ": " << absl::FormatDuration(backoff));
      CHECK(backoff >= full / 2);
      CHECK(backoff <= full);
      CHECK(backoff == RetryBackoff(options, run_id, retry));  // same inputs, same wait
    }
  }
  // Runs failing together do not all come back at the same instant.
  CHECK(RetryBackoff(options, 1, 1) != RetryBackoff(options, 2, 1));
  const services::RetryDecision decision =
      DecideAfterFailure(RunWith(5, 3), v1::FAILURE_CLASS_SYSTEM_SOFTWARE, Counts(2), options);
  CHECK(decision.backoff == RetryBackoff(options, 3, 3));

  RetryOptions bad;
  bad.max_backoff = absl::Seconds(1);
  CHECK_FALSE(bad.Validate().ok());
}

}  // namespace
}  // namespace scalelab::scheduler
