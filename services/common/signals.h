// Turns SIGINT/SIGTERM into a callback on an ordinary thread, so shutdown code may lock and log.
#ifndef SCALELAB_SERVICES_COMMON_SIGNALS_H_
#define SCALELAB_SERVICES_COMMON_SIGNALS_H_

#include <functional>

namespace scalelab::services {

// Blocks SIGINT and SIGTERM in the calling thread (call it in main before starting threads, so
// every thread inherits the mask) and starts a detached thread that waits for either and then
// calls `on_signal` once with the signal number.
void HandleTerminationSignals(std::function<void(int)> on_signal);

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_COMMON_SIGNALS_H_
