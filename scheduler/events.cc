#include "scheduler/events.h"

#include <utility>

namespace scalelab::scheduler {

void EventBus::Publish(const Event& event) {
  {
    absl::MutexLock lock(&mu_);
    ++sequence_[static_cast<int>(event.topic)];
  }
  absl::MutexLock lock(&callbacks_mu_);
  for (const auto& [id, subscription] : callbacks_) {
    if (subscription.first == event.topic) subscription.second(event);
  }
}

void EventBus::PublishRunChange(int64_t sweep_id, const std::string& state) {
  Publish({Topic::kRunChanged, sweep_id, state});
  const bool unknown = sweep_id == 0 || state.empty();
  if (unknown || state == "SUCCEEDED" || state == "FAILED" || state == "CANCELLED") {
    Publish({Topic::kRunFinished, sweep_id, state});
  }
  if (unknown || state == "PENDING") Publish({Topic::kRunSubmitted, sweep_id, state});
}

uint64_t EventBus::Sequence(Topic topic) const {
  absl::MutexLock lock(&mu_);
  return sequence_[static_cast<int>(topic)];
}

uint64_t EventBus::WaitFor(Topic topic, uint64_t seen, absl::Duration timeout) {
  const int index = static_cast<int>(topic);
  absl::MutexLock lock(&mu_);
  auto changed = [this, index, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || sequence_[index] > seen;
  };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return sequence_[index];
}

int EventBus::Subscribe(Topic topic, Callback callback) {
  absl::MutexLock lock(&callbacks_mu_);
  const int id = next_id_++;
  callbacks_.emplace(id, std::make_pair(topic, std::move(callback)));
  return id;
}

void EventBus::Unsubscribe(int id) {
  absl::MutexLock lock(&callbacks_mu_);
  callbacks_.erase(id);
}

void EventBus::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

}  // namespace scalelab::scheduler
