#include "services/common/run_state.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace scalelab::services {
namespace {

// Strips the proto enum prefix: RUN_STATE_PENDING -> PENDING.
std::string StripPrefix(const std::string& full, absl::string_view prefix) {
  if (absl::StartsWith(full, prefix)) return full.substr(prefix.size());
  return full;
}

}  // namespace

std::string RunStateName(v1::RunState state) {
  return StripPrefix(v1::RunState_Name(state), "RUN_STATE_");
}

absl::StatusOr<v1::RunState> ParseRunState(absl::string_view name) {
  v1::RunState state;
  if (v1::RunState_Parse(absl::StrCat("RUN_STATE_", absl::AsciiStrToUpper(name)), &state) &&
      state != v1::RUN_STATE_UNSPECIFIED) {
    return state;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "run state: expected one of PENDING, ADMITTED, LEASED, RUNNING, SUCCEEDED, FAILED, "
      "CANCELLED, PREEMPTED, got \"",
      name, "\""));
}

std::string SweepStateName(v1::SweepState state) {
  return StripPrefix(v1::SweepState_Name(state), "SWEEP_STATE_");
}

absl::StatusOr<v1::SweepState> ParseSweepState(absl::string_view name) {
  v1::SweepState state;
  if (v1::SweepState_Parse(absl::StrCat("SWEEP_STATE_", absl::AsciiStrToUpper(name)), &state) &&
      state != v1::SWEEP_STATE_UNSPECIFIED) {
    return state;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "sweep state: expected RUNNING, SUCCEEDED, FAILED or CANCELLED, got \"", name, "\""));
}

std::string FailureClassName(v1::FailureClass failure_class) {
  if (failure_class == v1::FAILURE_CLASS_UNSPECIFIED) return "";
  return StripPrefix(v1::FailureClass_Name(failure_class), "FAILURE_CLASS_");
}

v1::FailureClass ParseFailureClass(absl::string_view name) {
  v1::FailureClass failure_class;
  if (!name.empty() &&
      v1::FailureClass_Parse(absl::StrCat("FAILURE_CLASS_", name), &failure_class)) {
    return failure_class;
  }
  return v1::FAILURE_CLASS_UNSPECIFIED;
}

std::string RunKindName(v1::RunKind kind) {
  return absl::AsciiStrToLower(StripPrefix(v1::RunKind_Name(kind), "RUN_KIND_"));
}

absl::StatusOr<v1::RunKind> ParseRunKind(absl::string_view name) {
  v1::RunKind kind;
  if (v1::RunKind_Parse(absl::StrCat("RUN_KIND_", absl::AsciiStrToUpper(name)), &kind) &&
      kind != v1::RUN_KIND_UNSPECIFIED) {
    return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("kind: expected pretrain, sft, grpo or eval, got \"", name, "\""));
}

bool IsTerminal(v1::RunState state) {
  return state == v1::RUN_STATE_SUCCEEDED || state == v1::RUN_STATE_FAILED ||
         state == v1::RUN_STATE_CANCELLED;
}

bool IsAllowedTransition(v1::RunState from, v1::RunState to) {
  using v1::RunState;
  if (IsTerminal(from) || from == to) return false;
  if (to == v1::RUN_STATE_CANCELLED) return true;
  switch (from) {
    case v1::RUN_STATE_PENDING:
      // FAILED: a run that can never start (the run it starts from ended without weights).
      return to == v1::RUN_STATE_ADMITTED || to == v1::RUN_STATE_LEASED ||
             to == v1::RUN_STATE_FAILED;
    case v1::RUN_STATE_ADMITTED:
      return to == v1::RUN_STATE_LEASED || to == v1::RUN_STATE_PENDING;
    case v1::RUN_STATE_LEASED:
      return to == v1::RUN_STATE_RUNNING || to == v1::RUN_STATE_PENDING ||
             to == v1::RUN_STATE_FAILED || to == v1::RUN_STATE_SUCCEEDED;
    case v1::RUN_STATE_RUNNING:
      return to == v1::RUN_STATE_SUCCEEDED || to == v1::RUN_STATE_FAILED ||
             to == v1::RUN_STATE_PENDING || to == v1::RUN_STATE_PREEMPTED;
    case v1::RUN_STATE_PREEMPTED:
      return to == v1::RUN_STATE_PENDING;
    default:
      return false;
  }
}

}  // namespace scalelab::services
