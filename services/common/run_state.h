// The run state machine: names as stored in PostgreSQL, terminal states, allowed transitions.
//
//   PENDING -> ADMITTED -> LEASED -> RUNNING -> SUCCEEDED | FAILED | CANCELLED
//   PENDING -> LEASED            (admission is immediate until quotas arrive)
//   LEASED | RUNNING -> PENDING  (lease expired or retryable failure, attempts left)
//   RUNNING -> PREEMPTED -> PENDING
//   any non-terminal -> CANCELLED; LEASED | RUNNING -> FAILED
#ifndef SCALELAB_SERVICES_COMMON_RUN_STATE_H_
#define SCALELAB_SERVICES_COMMON_RUN_STATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::services {

// "PENDING" for RUN_STATE_PENDING; the stored and printed form.
std::string RunStateName(v1::RunState state);
absl::StatusOr<v1::RunState> ParseRunState(absl::string_view name);  // accepts "pending" too

std::string SweepStateName(v1::SweepState state);
absl::StatusOr<v1::SweepState> ParseSweepState(absl::string_view name);

std::string FailureClassName(v1::FailureClass failure_class);  // "" for UNSPECIFIED
v1::FailureClass ParseFailureClass(absl::string_view name);    // UNSPECIFIED when unknown

std::string RunKindName(v1::RunKind kind);  // "pretrain"
absl::StatusOr<v1::RunKind> ParseRunKind(absl::string_view name);

bool IsTerminal(v1::RunState state);
// True when the state machine above allows from -> to.
bool IsAllowedTransition(v1::RunState from, v1::RunState to);

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_COMMON_RUN_STATE_H_
