// SweepService.WatchSweep on gRPC's callback API: a watch costs no thread while it waits.
//
// Each call is a SweepWatcher (a grpc::ServerWriteReactor). It reads its sweep's snapshot from the
// store, writes it when what a watcher displays changed, and then sleeps until the WatchHub pokes
// it: on a committed run change of its sweep (the EventBus, fed by LISTEN/NOTIFY), on an event of
// unknown sweep (the listener reconnected), or every `poll` as a fallback. Pokes that arrive while
// a read or write is in flight coalesce into one more read. A watch ends with OK once a snapshot
// of a finished sweep was written, with CANCELLED when the client goes away or the hub stops.
//
// Store reads never run on gRPC's threads: they run on the hub's small executor (`threads`
// threads shared by all watches), so a thousand watchers cost a thousand reactors, not a
// thousand threads.
#ifndef SCALELAB_SCHEDULER_SWEEP_WATCH_H_
#define SCALELAB_SCHEDULER_SWEEP_WATCH_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scalelab/v1/sweep.pb.h"
#include "scheduler/events.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

class SweepWatcher;

struct WatchHubOptions {
  int threads = 2;                         // executor threads for store reads (>= 1)
  absl::Duration poll = absl::Seconds(2);  // every watch re-reads at least this often
};

// Owns the executor and the registry of live watches. Thread-safe. Must outlive every watcher it
// made: Stop() first (watches end), then the gRPC server's Shutdown (waits for them), then
// destroy.
class WatchHub {
 public:
  // `store` must outlive the hub; `events` may be null (watches then re-read every poll only).
  WatchHub(services::Store* store, EventBus* events, WatchHubOptions options);
  ~WatchHub();

  // A reactor for one WatchSweep call; gRPC owns it until its OnDone.
  grpc::ServerWriteReactor<v1::SweepEvent>* Watch(grpc::CallbackServerContext* context,
                                                  int64_t sweep_id);

  // Ends every live watch (CANCELLED: the scheduler is stopping); new ones end at once.
  // Idempotent.
  void Stop();

  // Watches alive now (started, not yet done).
  int active() const;

 private:
  friend class SweepWatcher;
  void Post(std::function<void()> task);
  void Unregister(SweepWatcher* watcher, int64_t sweep_id);
  void OnEvent(const Event& event);
  void ExecutorLoop();
  void PollLoop();

  services::Store* const store_;
  EventBus* const events_;
  const WatchHubOptions options_;
  int subscription_ = 0;

  mutable absl::Mutex mu_;
  std::map<int64_t, std::set<SweepWatcher*>> watchers_ ABSL_GUARDED_BY(mu_);
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex queue_mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool closed_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::vector<std::thread> threads_;
  std::thread poller_;
};

// Exposed for tests: the bytes that decide whether a watcher is sent a snapshot (the event with
// its updated_at timestamps cleared, serialized deterministically).
std::string WatchFingerprint(const v1::SweepEvent& event);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SWEEP_WATCH_H_
