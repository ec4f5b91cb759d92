#include "services/api/metrics.h"

#include <exception>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace scalelab::services {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  try {
    // civetweb throws when it cannot bind; that must not escape as an exception.
    server->exposer_ = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics address ", address, ": cannot listen: ", e.what()));
  }
  server->exposer_->RegisterCollectable(registry);
  auto ports = server->exposer_->GetListeningPorts();
  if (!ports.empty()) server->port_ = ports.front();
  return server;
}

}  // namespace scalelab::services
