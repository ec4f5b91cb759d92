// The scheduler's in-process event bus: loops wait on it instead of polling the store.
//
// Topics are coarse on purpose. kRunChanged fires for every committed run state change of any
// scheduler process on the database (fed by PostgreSQL LISTEN/NOTIFY, store/change_listener.h);
// kRunFinished when the new state is terminal (SUCCEEDED, FAILED, CANCELLED); kRunSubmitted when
// runs became PENDING (a new sweep, or a retry requeued). An event with sweep_id 0 means "anything
// may have changed" (the listener reconnected after losing PostgreSQL): treat it as a wake-up.
//
// Two ways to use it:
//   - Wait: `uint64_t seen = bus.Sequence(Topic::kRunFinished);` ... do work ...
//     `bus.WaitFor(Topic::kRunFinished, seen, absl::Seconds(5));` returns as soon as anything was
//     published on the topic after `seen` was read (no event is missed between the two calls).
//   - Subscribe: a callback runs on the publisher's thread for each event; it must be quick and
//     must not call Subscribe/Unsubscribe. For reactors that post work elsewhere.
// Thread-safe.
#ifndef SCALELAB_SCHEDULER_EVENTS_H_
#define SCALELAB_SCHEDULER_EVENTS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace scalelab::scheduler {

enum class Topic { kRunChanged = 0, kRunFinished, kRunSubmitted };
inline constexpr int kTopicCount = 3;

struct Event {
  Topic topic = Topic::kRunChanged;
  int64_t sweep_id = 0;  // 0 = unknown: anything may have changed
  std::string state;     // the runs' new RunState name; "" when unknown
};

class EventBus {
 public:
  using Callback = std::function<void(const Event&)>;

  // Publishes on `event.topic`: bumps its sequence, wakes waiters, calls its subscribers.
  void Publish(const Event& event);
  // Publishes a run state change as the topics it belongs to (kRunChanged, plus kRunFinished or
  // kRunSubmitted by state; all three when sweep_id is 0).
  void PublishRunChange(int64_t sweep_id, const std::string& state);

  // How many events the topic has had so far.
  uint64_t Sequence(Topic topic) const;
  // Blocks until Sequence(topic) > seen or `timeout` passed, or Close() was called. Returns the
  // sequence then.
  uint64_t WaitFor(Topic topic, uint64_t seen, absl::Duration timeout);

  // Returns an id for Unsubscribe. The callback must outlive its subscription.
  int Subscribe(Topic topic, Callback callback);
  // After it returns the callback is not running and will not run again.
  void Unsubscribe(int id);

  // Wakes every waiter and makes WaitFor return at once from now on (shutdown).
  void Close();

 private:
  mutable absl::Mutex mu_;
  std::array<uint64_t, kTopicCount> sequence_ ABSL_GUARDED_BY(mu_) = {};
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Callbacks run under callbacks_mu_ (not mu_), so Unsubscribe can wait for a running one.
  absl::Mutex callbacks_mu_;
  int next_id_ ABSL_GUARDED_BY(callbacks_mu_) = 1;
  std::map<int, std::pair<Topic, Callback>> callbacks_ ABSL_GUARDED_BY(callbacks_mu_);
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_EVENTS_H_
