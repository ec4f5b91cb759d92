// Logging set-up shared by the daemons: spdlog to stderr (stdout stays free for data), one line
// per event, "key=value" fields in the message.
#ifndef SCALELAB_SERVICES_COMMON_LOGGING_H_
#define SCALELAB_SERVICES_COMMON_LOGGING_H_

#include <string>

#include "absl/status/status.h"

namespace scalelab::services {

// `component` names the daemon in every line; `level` is trace|debug|info|warn|error.
absl::Status InitLogging(const std::string& component, const std::string& level);

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_COMMON_LOGGING_H_
