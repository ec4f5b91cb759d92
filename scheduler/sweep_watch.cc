#include "scheduler/sweep_watch.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <algorithm>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "services/api/status_util.h"

namespace scalelab::scheduler {

std::string WatchFingerprint(const v1::SweepEvent& event) {
  // Timestamps change on every report; compare the content that a watcher displays.
  v1::SweepEvent comparable = event;
  comparable.mutable_sweep()->clear_updated_at();
  for (v1::Run& run : *comparable.mutable_runs()) run.clear_updated_at();
  std::string fingerprint;
  google::protobuf::io::StringOutputStream stream(&fingerprint);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.SetSerializationDeterministic(true);  // equal maps serialize to equal bytes
  comparable.SerializeToCodedStream(&coded);
  coded.Trim();
  return fingerprint;
}

// One WatchSweep call. At most one operation is in flight at a time (`busy_`): a store read on
// the hub's executor, or a write on gRPC's side. Pokes while busy set `dirty_`, which the end of
// the operation turns into one more read. Finish is called exactly once, by whoever holds the
// operation (or by OnCancel when none is in flight); after StartWrite or Finish this object may
// be running on another thread or be gone, so nothing touches it afterwards.
class SweepWatcher final : public grpc::ServerWriteReactor<v1::SweepEvent> {
 public:
  SweepWatcher(WatchHub* hub, int64_t sweep_id) : hub_(hub), sweep_id_(sweep_id) {}

  // A change may concern this watch (or the hub is stopping, `stop`).
  void Poke(bool stop) {
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      if (stop) stopping_ = true;
      if (busy_) {
        dirty_ = true;
        return;
      }
      busy_ = true;
    }
    hub_->Post([this] { Read(); });
  }

  void OnWriteDone(bool ok) override {
    if (!ok || sent_final_) {
      End(grpc::Status::OK);  // the client went away, or it has seen the sweep end
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      if (!dirty_ && !stopping_ && !cancelled_) {
        busy_ = false;
        return;
      }
      dirty_ = false;
    }
    hub_->Post([this] { Read(); });
  }

  void OnCancel() override {
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      if (done_) return;
      if (busy_) {
        dirty_ = true;  // the operation in flight reads again, sees cancelled_ and ends the call
        return;
      }
      busy_ = true;
      done_ = true;
    }
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch ended: the client went away"));
  }

  void OnDone() override {
    hub_->Unregister(this, sweep_id_);
    delete this;
  }

 private:
  // On the hub's executor: one snapshot, then a write, the end of the call, or idleness.
  void Read() {
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      dirty_ = false;
      stopping = stopping_ || cancelled_;
    }
    if (stopping) {
      End(grpc::Status(grpc::StatusCode::CANCELLED,
                       "watch ended: scheduler stopping or client gone"));
      return;
    }
    absl::StatusOr<v1::Sweep> sweep = hub_->store_->GetSweep(sweep_id_);
    if (!sweep.ok()) {
      End(services::ToGrpcStatus(sweep.status()));
      return;
    }
    absl::StatusOr<std::vector<v1::Run>> runs =
        hub_->store_->ListRuns(sweep_id_, v1::RUN_STATE_UNSPECIFIED, 0);
    if (!runs.ok()) {
      End(services::ToGrpcStatus(runs.status()));
      return;
    }
    v1::SweepEvent event;
    *event.mutable_sweep() = *std::move(sweep);
    for (v1::Run& run : *runs) *event.add_runs() = std::move(run);
    const bool final_state = event.sweep().state() != v1::SWEEP_STATE_RUNNING;
    std::string fingerprint = WatchFingerprint(event);
    if (fingerprint != last_sent_) {
      last_sent_ = std::move(fingerprint);
      event_ = std::move(event);
      sent_final_ = final_state;
      StartWrite(&event_);
      return;
    }
    if (final_state) {
      End(grpc::Status::OK);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      if (!dirty_) {
        busy_ = false;
        return;
      }
    }
    hub_->Post([this] { Read(); });
  }

  void End(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    Finish(std::move(status));
  }

  WatchHub* const hub_;
  const int64_t sweep_id_;
  // Owned by the operation in flight (no lock needed: one at a time).
  v1::SweepEvent event_;   // alive until OnWriteDone
  std::string last_sent_;  // fingerprint of the last snapshot written
  bool sent_final_ = false;
  absl::Mutex mu_;
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

WatchHub::WatchHub(services::Store* store, EventBus* events, WatchHubOptions options)
    : store_(store), events_(events), options_(options) {
  for (int thread_idx = 0; thread_idx < std::max(options_.threads, 1); ++thread_idx) {
    threads_.emplace_back([this] { ExecutorLoop(); });
  }
  poller_ = std::thread([this] { PollLoop(); });
  if (events_ != nullptr) {
    subscription_ =
        events_->Subscribe(Topic::kRunChanged, [this](const Event& event) { OnEvent(event); });
  }
}

WatchHub::~WatchHub() {
  Stop();
  {
    absl::MutexLock lock(&queue_mu_);
    closed_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
  poller_.join();
}

grpc::ServerWriteReactor<v1::SweepEvent>* WatchHub::Watch(grpc::CallbackServerContext*,
                                                          int64_t sweep_id) {
  auto* watcher = new SweepWatcher(this, sweep_id);
  bool stopping = false;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    watchers_[sweep_id].insert(watcher);
    ++active_;
  }
  // The first read; an event that poked it since it was registered is already on its way.
  watcher->Poke(/*stop=*/stopping);
  return watcher;
}

void WatchHub::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [sweep_id, watchers] : watchers_) {
      for (SweepWatcher* watcher : watchers) watcher->Poke(/*stop=*/true);
    }
  }
  if (events_ != nullptr && subscription_ != 0) events_->Unsubscribe(subscription_);
}

int WatchHub::active() const {
  absl::MutexLock lock(&mu_);
  return active_;
}

void WatchHub::Post(std::function<void()> task) {
  absl::MutexLock lock(&queue_mu_);
  queue_.push_back(std::move(task));
}

void WatchHub::Unregister(SweepWatcher* watcher, int64_t sweep_id) {
  absl::MutexLock lock(&mu_);
  auto it = watchers_.find(sweep_id);
  if (it == watchers_.end()) return;
  it->second.erase(watcher);
  if (it->second.empty()) watchers_.erase(it);
  --active_;
}

void WatchHub::OnEvent(const Event& event) {
  // On the publisher's thread: only pokes (a flag, or a task queued), never a read.
  absl::MutexLock lock(&mu_);
  if (event.sweep_id == 0) {
    for (auto& [sweep_id, watchers] : watchers_) {
      for (SweepWatcher* watcher : watchers) watcher->Poke(/*stop=*/false);
    }
    return;
  }
  auto it = watchers_.find(event.sweep_id);
  if (it == watchers_.end()) return;
  for (SweepWatcher* watcher : it->second) watcher->Poke(/*stop=*/false);
}

void WatchHub::ExecutorLoop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&queue_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) {
        return closed_ || !queue_.empty();
      };
      queue_mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;  // closed and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void WatchHub::PollLoop() {
  while (true) {
    {
      absl::MutexLock lock(&queue_mu_);
      auto closed = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(queue_mu_) { return closed_; };
      if (queue_mu_.AwaitWithTimeout(absl::Condition(&closed), options_.poll)) return;
    }
    // The fallback for changes no event told of.
    absl::MutexLock lock(&mu_);
    for (auto& [sweep_id, watchers] : watchers_) {
      for (SweepWatcher* watcher : watchers) watcher->Poke(/*stop=*/false);
    }
  }
}

}  // namespace scalelab::scheduler
