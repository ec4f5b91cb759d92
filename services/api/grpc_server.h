// Starts a gRPC server with the health service and server reflection on.
#ifndef SCALELAB_SERVICES_API_GRPC_SERVER_H_
#define SCALELAB_SERVICES_API_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace scalelab::services {

struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (useful when the address asked for port 0)
};

// Binds `address` (host:port, insecure credentials; TLS and auth arrive with deployment) and
// registers `services`, which must outlive the server.
absl::StatusOr<RunningServer> StartGrpcServer(const std::string& address,
                                              const std::vector<grpc::Service*>& services);

// An insecure channel to host:port for clients and tests.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address);

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_API_GRPC_SERVER_H_
