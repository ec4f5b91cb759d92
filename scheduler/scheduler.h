// The scheduler daemon as a library: store (embedded PostgreSQL or a given server), the three
// gRPC services, the lease reaper and the metrics endpoint. main.cc only parses flags into
// SchedulerOptions; tests start the same object on port 0.
#ifndef SCALELAB_SCHEDULER_SCHEDULER_H_
#define SCALELAB_SCHEDULER_SCHEDULER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "scheduler/events.h"
#include "scheduler/fitter.h"
#include "scheduler/leader.h"
#include "scheduler/placement.h"
#include "scheduler/reports.h"
#include "services/analysis/carbon.h"
#include "services/api/grpc_server.h"
#include "services/api/metrics.h"
#include "services/common/clock.h"
#include "services/store/embedded_postgres.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

struct SchedulerOptions {
  // host:port for the gRPC API; port 0 picks a free port (see Scheduler::grpc_port()).
  std::string listen_address = "127.0.0.1:7070";
  // host:port for /metrics; "" disables the endpoint.
  std::string metrics_address = "127.0.0.1:9464";
  // libpq URI of the results store. "" starts a private PostgreSQL under data_dir/postgres.
  std::string database_url;
  // Folder for the embedded cluster; ignored when database_url is set.
  std::string data_dir = ".scalelab";
  // A lease lives this long after the last heartbeat or metric report of its attempt.
  absl::Duration lease_ttl = absl::Seconds(15);
  // How often workers are told to heartbeat. Must be well under lease_ttl.
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // How often expired leases are looked for (an index scan of expired leases only).
  absl::Duration reap_interval = absl::Seconds(1);
  // How often the run gauges (a count over all runs) are refreshed when no run changed state;
  // after a change they are refreshed at the next reaper pass.
  absl::Duration gauge_interval = absl::Seconds(10);
  // The leader lease among schedulers sharing the database (scheduler/leader.h). Only the
  // leader runs the reaper, the fitter and the other background loops.
  LeaderOptions leader;
  int pool_size = 8;
  // How LeaseRuns places pending runs on workers (scheduler/placement.h).
  PlacementOptions placement;
  // How finished fit groups are fitted (scheduler/fitter.h). run_fitter false starts no fitter
  // thread; tests then call FitOnce.
  FitterOptions fitter;
  bool run_fitter = true;
  // Defaults of carbon and reliability reports (services/analysis/carbon.h, scheduler/reports.h).
  analysis::CarbonAssumptions carbon;
  ReliabilityAssumptions reliability;
  // Not owned; nullptr = the real clock.
  services::Clock* clock = nullptr;

  absl::Status Validate() const;
};

// Thread-safe: Start once, then Shutdown (also from another thread) and destroy.
class Scheduler {
 public:
  static absl::StatusOr<std::unique_ptr<Scheduler>> Start(SchedulerOptions options);
  ~Scheduler();

  // Stops accepting calls, ends watches, stops the reaper and the embedded PostgreSQL.
  void Shutdown();
  // Blocks until a Shutdown (from any thread) has finished.
  void Wait();

  // One reaper pass: expire leases, refresh gauges. Tests call it after moving a FakeClock.
  absl::Status ReapOnce();
  // One fitter pass (what the fitter thread runs every fitter.interval). Not concurrently with
  // itself: tests that call it should set run_fitter = false.
  absl::StatusOr<FitPassResult> FitOnce();

  // True while this process holds the leader lease (scheduler/leader.h).
  bool IsLeader() const;
  // Run state changes of every scheduler on the database, as committed (scheduler/events.h).
  // Loops that wait for "a run finished" or "runs were submitted" wait here.
  EventBus& events();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const;
  const std::string& database_url() const { return database_url_; }
  services::Store* store() { return store_.get(); }

 private:
  struct Impl;
  explicit Scheduler(SchedulerOptions options);
  absl::Status Init();

  SchedulerOptions options_;
  services::RealClock real_clock_;
  services::Clock* clock_ = nullptr;
  std::unique_ptr<services::EmbeddedPostgres> postgres_;
  std::string database_url_;
  std::unique_ptr<services::Store> store_;
  std::unique_ptr<Impl> impl_;
  int grpc_port_ = 0;
  std::atomic<bool> stopping_{false};
  absl::Notification stopped_;        // tells the reaper to end
  absl::Notification shutdown_done_;  // Shutdown finished (on whichever thread ran it)
  std::thread reaper_;
  std::thread fitter_thread_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SCHEDULER_H_
