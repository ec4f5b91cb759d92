// Conversions between absl::Status (used everywhere inside ScaleLab) and grpc::Status (used only
// at the edges: service handlers and client stubs). This is the one place that maps codes.
#ifndef SCALELAB_SERVICES_API_STATUS_UTIL_H_
#define SCALELAB_SERVICES_API_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include <cstddef>

#include "absl/status/status.h"

namespace scalelab::services {

// Longest status message ToGrpcStatus sends, in bytes. gRPC carries the message in trailing
// metadata, percent-encoding every non-ASCII byte (up to 3x), and clients refuse metadata over
// 8 KiB ("received initial metadata size exceeds limit"): 2000 bytes stays under that always.
inline constexpr size_t kMaxStatusMessageBytes = 2000;

// Same code, same message. absl and gRPC share the canonical code numbering. A message longer
// than kMaxStatusMessageBytes is cut (at a UTF-8 character boundary) and ends with
// "... (N more bytes)": every echoed value should be capped where it is written (runspec::Quoted),
// and this is the last resort that keeps an uncapped one from breaking the transport.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_API_STATUS_UTIL_H_
