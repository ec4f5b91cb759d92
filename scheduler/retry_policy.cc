#include "scheduler/retry_policy.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "runspec/run_config.h"

namespace scalelab::scheduler {
namespace {

// splitmix64: a fixed, well-mixed function of its input, so a run's jitter is the same on every
// scheduler and after a restart.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

services::RetryDecision Retry(const v1::Run& run, int retry, const RetryOptions& options,
                              services::RetryDecision::Budget budget, const char* which) {
  services::RetryDecision decision(v1::RUN_STATE_PENDING);
  decision.backoff = RetryBackoff(options, run.id(), retry);
  decision.avoid_worker = true;
  decision.spends = budget;
  decision.why = absl::StrCat(which, " retry ", retry, ", on another worker after ",
                              absl::FormatDuration(decision.backoff));
  return decision;
}

}  // namespace

absl::Status RetryOptions::Validate() const {
  if (base_backoff < absl::ZeroDuration() || max_backoff < base_backoff) {
    return absl::InvalidArgumentError(absl::StrCat(
        "base_backoff/max_backoff: expected 0 <= base <= max, got ",
        absl::FormatDuration(base_backoff), " and ", absl::FormatDuration(max_backoff)));
  }
  if (oom_retries < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("oom_retries: expected >= 0, got ", oom_retries));
  }
  return absl::OkStatus();
}

absl::Duration RetryBackoff(const RetryOptions& options, int64_t run_id, int retry) {
  const int doublings = std::clamp(retry - 1, 0, 30);
  absl::Duration backoff =
      std::min(options.base_backoff * (int64_t{1} << doublings), options.max_backoff);
  const uint64_t draw = Mix(static_cast<uint64_t>(run_id) * 1000003ULL + retry);
  const double jitter = 0.5 + 0.5 * static_cast<double>(draw >> 11) / 9007199254740992.0;
  return backoff * jitter;
}

bool IsInfrastructureFailure(v1::FailureClass failure_class) {
  switch (failure_class) {
    case v1::FAILURE_CLASS_OUT_OF_MEMORY:
    case v1::FAILURE_CLASS_SYSTEM_SOFTWARE:
    case v1::FAILURE_CLASS_HARDWARE_TRANSIENT:
    case v1::FAILURE_CLASS_HARDWARE_PERMANENT:
    case v1::FAILURE_CLASS_NODE_LOST:
      return true;
    default:
      return false;
  }
}

services::RetryDecision DecideAfterFailure(const v1::Run& run, v1::FailureClass failure_class,
                                           const services::RetryCounts& counts,
                                           const RetryOptions& options) {
  using Budget = services::RetryDecision::Budget;
  switch (failure_class) {
    case v1::FAILURE_CLASS_USER:
    case v1::FAILURE_CLASS_UNSPECIFIED:
      // Running the same config again fails the same way; a person has to look.
      return services::RetryDecision(v1::RUN_STATE_FAILED);
    case v1::FAILURE_CLASS_CANCELLED:
      return services::RetryDecision(v1::RUN_STATE_CANCELLED);
    case v1::FAILURE_CLASS_PREEMPTED: {
      services::RetryDecision decision(v1::RUN_STATE_PENDING);
      decision.why = "preempted: requeued without spending a retry";
      return decision;
    }
    case v1::FAILURE_CLASS_OUT_OF_MEMORY: {
      if (counts.oom_retries >= options.oom_retries) {
        services::RetryDecision decision(v1::RUN_STATE_FAILED);
        decision.why = absl::StrCat("out of memory again after ", counts.oom_retries, " retries");
        return decision;
      }
      return Retry(run, counts.oom_retries + 1, options, Budget::kOom, "out-of-memory");
    }
    default:
      break;
  }
  const int max_attempts =
      run.max_attempts() > 0 ? run.max_attempts() : runspec::kDefaultMaxAttempts;
  if (counts.infra_retries >= max_attempts - 1) {
    services::RetryDecision decision(v1::RUN_STATE_FAILED);
    decision.why = absl::StrCat("infrastructure retry budget spent (", counts.infra_retries, " of ",
                                max_attempts - 1, ")");
    return decision;
  }
  return Retry(run, counts.infra_retries + 1, options, Budget::kInfra, "infrastructure");
}

services::RetryDecider RetryDeciderWith(const RetryOptions& options) {
  return services::RetryDecider([options](const v1::Run& run, v1::FailureClass failure_class,
                                          const services::RetryCounts& counts) {
    return DecideAfterFailure(run, failure_class, counts, options);
  });
}

}  // namespace scalelab::scheduler
