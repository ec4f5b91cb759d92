// The scheduler daemon as a library: store (embedded PostgreSQL or a given server), the three
// gRPC services, the lease reaper and the metrics endpoint. main.cc only parses flags into
// SchedulerOptions; tests start the same object on port 0.
#ifndef SCALELAB_SCHEDULER_SCHEDULER_H_
#define SCALELAB_SCHEDULER_SCHEDULER_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "scheduler/admission.h"
#include "scheduler/events.h"
#include "scheduler/fitter.h"
#include "scheduler/leader.h"
#include "scheduler/placement.h"
#include "scheduler/quarantine.h"
#include "scheduler/reports.h"
#include "scheduler/retry_policy.h"
#include "scheduler/search_loop.h"
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
  // Gangs: the ports their rank 0 listens on for the others (services/store/placement_snapshot.h:
  // base + lease token % count, on rank 0's worker address).
  services::RendezvousPorts rendezvous;
  // How often expired leases are looked for (an index scan of expired leases only).
  absl::Duration reap_interval = absl::Seconds(1);
  // How often the run gauges (a count over all runs) are refreshed when no run changed state;
  // after a change they are refreshed at the next reaper pass.
  absl::Duration gauge_interval = absl::Seconds(10);
  // The leader lease among schedulers sharing the database (scheduler/leader.h). Only the
  // leader runs the reaper, the fitter and the other background loops.
  LeaderOptions leader;
  int pool_size = 8;
  // How the scheduling cycle admits pending runs (scheduler/admission.h); its placement
  // options are the policy's (scheduler/placement.h).
  AdmissionOptions admission;
  // Each admission pass reads at most this many pending runs of each (project, priority class)
  // queue; 0 = all of them.
  int max_pending_per_queue = 2000;
  // false starts no cycle thread; tests then call AdmitOnce.
  bool run_admission = true;
  // Projects' GPU quotas and fair-share weights, applied (upserted) at start. Later changes:
  // restart with new values (they persist in the projects table either way).
  struct ProjectPolicy {
    std::string name;
    int gpu_quota = 0;    // 0 = none
    double weight = 1.0;  // > 0
  };
  std::vector<ProjectPolicy> projects;
  // How finished fit groups are fitted (scheduler/fitter.h). run_fitter false starts no fitter
  // thread; tests then call FitOnce.
  FitterOptions fitter;
  bool run_fitter = true;
  // How search sweeps make their runs (scheduler/search_loop.h). run_search false starts no
  // search thread; tests then call search_loop()->RunOnce().
  SearchLoopOptions search;
  bool run_search = true;
  // Defaults of carbon and reliability reports (services/analysis/carbon.h, scheduler/reports.h).
  analysis::CarbonAssumptions carbon;
  ReliabilityAssumptions reliability;
  // Failures: retry backoff and budgets (scheduler/retry_policy.h), quarantine of workers whose
  // infrastructure failures stand out (scheduler/quarantine.h).
  RetryOptions retry;
  QuarantineOptions quarantine;
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
  // One admission pass (what the cycle thread runs).
  absl::StatusOr<AdmissionPass> AdmitOnce();

  // The search loop (woken when a run of a search sweep may have finished).
  SearchLoop* search_loop();

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
  absl::Status QuarantineOnce();

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
  absl::Time next_quarantine_check_ = absl::InfinitePast();  // reaper thread only
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SCHEDULER_H_
