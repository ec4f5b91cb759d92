// The one absl <-> gRPC status mapping: codes kept, and no message long enough to break the
// transport (gRPC clients refuse status metadata over 8 KiB).
#include "services/api/status_util.h"

#include <catch2/catch.hpp>
#include <string>

namespace scalelab::services {
namespace {

TEST_CASE("ToGrpcStatus keeps the code and a short message as they are", "[unit][services]") {
  grpc::Status status = ToGrpcStatus(absl::InvalidArgumentError("sweep.yaml:3: name: bad"));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message() == "sweep.yaml:3: name: bad");
  CHECK(ToGrpcStatus(absl::OkStatus()).ok());
  CHECK(FromGrpcStatus(status).code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("ToGrpcStatus cuts a 2 MB message to a few KB and says how much was left out",
          "[unit][services]") {
  const std::string huge = "name: got \"" + std::string(2 << 20, 'x') + "\"";
  grpc::Status status = ToGrpcStatus(absl::InvalidArgumentError(huge));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message().size() <= kMaxStatusMessageBytes);
  CHECK(status.error_message().rfind("name: got \"xxx", 0) == 0);
  CHECK(status.error_message().find("more bytes)") != std::string::npos);
}

TEST_CASE("ToGrpcStatus never cuts a UTF-8 character in half", "[unit][services]") {
  std::string message;
  while (message.size() < 3 * kMaxStatusMessageBytes) message += "\xC3\xA9";  // é
  const std::string cut = ToGrpcStatus(absl::InternalError(message)).error_message();
  const size_t kept = cut.find("...");
  REQUIRE(kept != std::string::npos);
  CHECK(kept % 2 == 0);  // whole two-byte characters only
}

}  // namespace
}  // namespace scalelab::services
