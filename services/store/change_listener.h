// Run state changes as they are committed, from PostgreSQL's LISTEN/NOTIFY.
//
// Migration 0010 makes every insert into run_transitions NOTIFY channel `scalelab_runs` with
// "<sweep_id> <to_state>" in the writing transaction, so a notification arrives only once the
// change is committed, from whichever scheduler process made it. A ChangeListener holds one
// connection of its own (not a pool connection) that LISTENs on that channel and hands each
// notification to a callback on its thread.
#ifndef SCALELAB_SERVICES_STORE_CHANGE_LISTENER_H_
#define SCALELAB_SERVICES_STORE_CHANGE_LISTENER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace scalelab::services {

struct RunChange {
  // 0 = "anything may have changed": sent after the listener reconnected, since notifications
  // sent while it was disconnected are lost.
  int64_t sweep_id = 0;
  std::string to_state;  // RunState name ("SUCCEEDED", ...); "" with sweep_id 0
};

// Thread-safe to destroy from any thread but the callback's. The callback runs on the
// listener's thread, one call at a time; it must not block for long (it delays later ones).
class ChangeListener {
 public:
  using Callback = std::function<void(const RunChange&)>;
  // Connects and LISTENs before returning (Unavailable if PostgreSQL cannot be reached). After a
  // lost connection it reconnects every `retry_interval` until it succeeds or is destroyed.
  static absl::StatusOr<std::unique_ptr<ChangeListener>> Start(
      const std::string& url, Callback on_change,
      absl::Duration retry_interval = absl::Milliseconds(500));
  ~ChangeListener();  // stops the thread (within about 200 ms) and closes the connection

  // Notifications received so far (a reconnect counts as one). For tests and metrics.
  int64_t received() const { return received_.load(); }

 private:
  struct Connection;
  ChangeListener(std::string url, Callback on_change, absl::Duration retry_interval);
  void Loop();

  const std::string url_;
  const Callback on_change_;
  const absl::Duration retry_interval_;
  std::unique_ptr<Connection> connection_;  // touched only by Start and then the thread
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> received_{0};
  std::thread thread_;
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_CHANGE_LISTENER_H_
