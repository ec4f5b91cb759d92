#include "services/common/signals.h"

#include <pthread.h>
#include <signal.h>

#include <thread>
#include <utility>

namespace scalelab::services {

void HandleTerminationSignals(std::function<void(int)> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set, on_signal = std::move(on_signal)] {
    int signal_number = 0;
    if (sigwait(&set, &signal_number) == 0) on_signal(signal_number);
  }).detach();
}

}  // namespace scalelab::services
