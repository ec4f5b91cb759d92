#include "services/api/status_util.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace scalelab::services {

namespace {

constexpr absl::string_view kEllipsis = "... (";

// `message` cut to at most kMaxStatusMessageBytes, never inside a UTF-8 sequence.
std::string CappedMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  // Room for "... (<20 digits> more bytes)".
  size_t keep = kMaxStatusMessageBytes - kEllipsis.size() - 32;
  // Back off over continuation bytes (10xxxxxx) to the start of a character.
  while (keep > 0 && (static_cast<unsigned char>(message[keep]) & 0xC0) == 0x80) --keep;
  return absl::StrCat(message.substr(0, keep), kEllipsis, message.size() - keep, " more bytes)");
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      CappedMessage(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace scalelab::services
