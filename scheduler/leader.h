// The leader lease: of the scheduler processes sharing one database, only the holder of the lease
// in table scheduler_leader acts (expires leases, ends unstartable runs, fits, runs background
// loops). Every process serves gRPC: submissions, reads and worker reports are transactions that
// are safe from any number of processes.
//
// A thread renews the lease every `renew_interval`; the database's clock dates it, so processes
// need no common clock. The holder counts itself leader only until `ttl` after the start of its
// last successful renewal (its own steady clock), which is never later than the database's expiry;
// a standby takes over once the database's expiry passed: within ttl + renew_interval of the
// leader's death. The epoch is set as the store's leader fence (Store::SetLeaderFence), so a
// deposed leader's leader-only writes roll back instead of landing.
#ifndef SCALELAB_SCHEDULER_LEADER_H_
#define SCALELAB_SCHEDULER_LEADER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

struct LeaderOptions {
  // Names this process in scheduler_leader.holder; "" = "<hostname>:<pid>:<random>".
  std::string holder;
  // How long a lease lives without renewal: the standby's takeover delay after a crash.
  absl::Duration ttl = absl::Seconds(5);
  // How often the holder renews and a standby tries to take over. At most ttl / 3.
  absl::Duration renew_interval = absl::Seconds(1);

  absl::Status Validate() const;
};

// Thread-safe. Start once; the destructor stops the thread and gives the lease up.
class LeaderLease {
 public:
  // Called on the lease thread when this process becomes leader (true) or stops being (false).
  using OnChange = std::function<void(bool leader, int64_t epoch)>;

  LeaderLease(services::Store* store, LeaderOptions options, OnChange on_change = nullptr);
  ~LeaderLease();

  // Makes the first attempt before returning (so a lone scheduler leads from its start), then
  // renews on a thread.
  void Start();
  // Stops renewing and releases the lease so that a standby takes over at its next attempt.
  void Stop();

  // True while this process holds a live lease.
  bool IsLeader() const;
  int64_t epoch() const { return epoch_.load(); }
  const std::string& holder() const { return options_.holder; }

 private:
  void Attempt();

  services::Store* store_;
  LeaderOptions options_;
  OnChange on_change_;
  std::atomic<int64_t> epoch_{0};  // 0 = not leader
  // steady_clock ticks until which this process may act as leader.
  std::atomic<int64_t> valid_until_{0};
  absl::Notification stop_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_LEADER_H_
