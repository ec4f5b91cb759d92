// Conversions between absl::Status (used everywhere inside ScaleLab) and grpc::Status (used only
// at the edges: service handlers and client stubs). This is the one place that maps codes.
#ifndef SCALELAB_SERVICES_STATUS_UTIL_H_
#define SCALELAB_SERVICES_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace scalelab::services {

// Same code, same message. absl and gRPC share the canonical code numbering.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STATUS_UTIL_H_
