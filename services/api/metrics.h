// Prometheus exposition: one registry per daemon, served at http://<address>/metrics.
// Series follow scalelab_<subsystem>_<what>_<unit>; counters end in _total; labels are
// low-cardinality (never a run id).
#ifndef SCALELAB_SERVICES_API_METRICS_H_
#define SCALELAB_SERVICES_API_METRICS_H_

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace scalelab::services {

// Owns the HTTP exposer. Thread-safe (prometheus-cpp's registry is).
class MetricsServer {
 public:
  // `address` is host:port; port 0 picks a free port (see port()).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);
  int port() const { return port_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_API_METRICS_H_
