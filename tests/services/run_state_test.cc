#include "services/common/run_state.h"

#include <catch2/catch.hpp>

#include "services/api/status_util.h"

namespace scalelab::services {
namespace {

TEST_CASE("Run states print and parse by their stored names", "[services][unit]") {
  for (int value = v1::RunState_MIN + 1; value <= v1::RunState_MAX; ++value) {
    auto state = static_cast<v1::RunState>(value);
    auto parsed = ParseRunState(RunStateName(state));
    REQUIRE(parsed.ok());
    CHECK(*parsed == state);
  }
  CHECK(RunStateName(v1::RUN_STATE_PENDING) == "PENDING");
  CHECK(ParseRunState("running").value() == v1::RUN_STATE_RUNNING);
  auto bad = ParseRunState("sleeping");
  CHECK(absl::IsInvalidArgument(bad.status()));
  CHECK(bad.status().message().find("\"sleeping\"") != absl::string_view::npos);
  CHECK(RunKindName(v1::RUN_KIND_PRETRAIN) == "pretrain");
  CHECK(ParseRunKind("grpo").value() == v1::RUN_KIND_GRPO);
  CHECK(FailureClassName(v1::FAILURE_CLASS_NODE_LOST) == "NODE_LOST");
  CHECK(ParseFailureClass("NODE_LOST") == v1::FAILURE_CLASS_NODE_LOST);
  CHECK(ParseFailureClass("") == v1::FAILURE_CLASS_UNSPECIFIED);
}

TEST_CASE("The run state machine allows the documented transitions only", "[services][unit]") {
  using v1::RunState;
  CHECK(IsAllowedTransition(v1::RUN_STATE_PENDING, v1::RUN_STATE_LEASED));
  CHECK(IsAllowedTransition(v1::RUN_STATE_PENDING, v1::RUN_STATE_ADMITTED));
  CHECK(IsAllowedTransition(v1::RUN_STATE_LEASED, v1::RUN_STATE_RUNNING));
  CHECK(IsAllowedTransition(v1::RUN_STATE_RUNNING, v1::RUN_STATE_SUCCEEDED));
  CHECK(IsAllowedTransition(v1::RUN_STATE_RUNNING, v1::RUN_STATE_PENDING));
  CHECK(IsAllowedTransition(v1::RUN_STATE_RUNNING, v1::RUN_STATE_PREEMPTED));
  CHECK(IsAllowedTransition(v1::RUN_STATE_PREEMPTED, v1::RUN_STATE_PENDING));
  CHECK(IsAllowedTransition(v1::RUN_STATE_PENDING, v1::RUN_STATE_CANCELLED));
  CHECK(IsAllowedTransition(v1::RUN_STATE_PENDING, v1::RUN_STATE_FAILED));  // can never start
  CHECK_FALSE(IsAllowedTransition(v1::RUN_STATE_PENDING, v1::RUN_STATE_RUNNING));
  CHECK_FALSE(IsAllowedTransition(v1::RUN_STATE_PENDING, v1::RUN_STATE_SUCCEEDED));
  CHECK_FALSE(IsAllowedTransition(v1::RUN_STATE_PREEMPTED, v1::RUN_STATE_RUNNING));
  for (auto terminal : {v1::RUN_STATE_SUCCEEDED, v1::RUN_STATE_FAILED, v1::RUN_STATE_CANCELLED}) {
    CHECK(IsTerminal(terminal));
    for (int to = v1::RunState_MIN; to <= v1::RunState_MAX; ++to) {
      CHECK_FALSE(IsAllowedTransition(terminal, static_cast<RunState>(to)));
    }
  }
  CHECK_FALSE(IsTerminal(v1::RUN_STATE_RUNNING));
}

TEST_CASE("Status codes survive the trip to gRPC and back", "[services][unit]") {
  absl::Status original = absl::FailedPreconditionError("attempt 2 is not current");
  grpc::Status wire = ToGrpcStatus(original);
  CHECK(wire.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(wire.error_message() == "attempt 2 is not current");
  CHECK(FromGrpcStatus(wire) == original);
  CHECK(ToGrpcStatus(absl::OkStatus()).ok());
}

}  // namespace
}  // namespace scalelab::services
