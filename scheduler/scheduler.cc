#include "scheduler/scheduler.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/cluster_service.h"
#include "scheduler/queue_service.h"
#include "scheduler/results_service.h"
#include "scheduler/retry_policy.h"
#include "scheduler/scheduler_metrics.h"
#include "scheduler/store_placement_state.h"
#include "scheduler/sweep_service.h"
#include "scheduler/worker_service.h"
#include "services/common/run_state.h"
#include "services/store/change_listener.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {

absl::Status SchedulerOptions::Validate() const {
  if (listen_address.empty()) {
    return absl::InvalidArgumentError("listen_address: expected host:port, got \"\"");
  }
  if (database_url.empty() && data_dir.empty()) {
    return absl::InvalidArgumentError(
        "data_dir: expected a folder for the embedded PostgreSQL when no database url is given");
  }
  if (lease_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("lease_ttl: expected > 0, got ", absl::FormatDuration(lease_ttl)));
  }
  if (heartbeat_interval <= absl::ZeroDuration() || heartbeat_interval * 2 > lease_ttl) {
    return absl::InvalidArgumentError(absl::StrCat(
        "heartbeat_interval: expected > 0 and at most half the lease ttl (",
        absl::FormatDuration(lease_ttl), "), got ", absl::FormatDuration(heartbeat_interval)));
  }
  if (rendezvous.base < 1 || rendezvous.count < 1 ||
      int64_t{rendezvous.base} + rendezvous.count - 1 > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("rendezvous: expected ports base..base+count-1 within 1..65535, got base ",
                     rendezvous.base, " and count ", rendezvous.count));
  }
  if (reap_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reap_interval: expected > 0, got ", absl::FormatDuration(reap_interval)));
  }
  if (gauge_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("gauge_interval: expected > 0, got ", absl::FormatDuration(gauge_interval)));
  }
  if (absl::Status valid = leader.Validate(); !valid.ok()) return valid;
  if (pool_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat("pool_size: expected >= 1, got ", pool_size));
  }
  if (absl::Status valid = admission.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("admission.", valid.message()));
  }
  if (max_pending_per_queue < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_pending_per_queue: expected >= 0, got ", max_pending_per_queue));
  }
  for (const ProjectPolicy& project : projects) {
    if (project.name.empty() || project.gpu_quota < 0 || !(project.weight > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "projects: expected NAME:GPU_QUOTA:WEIGHT with a name, quota >= 0 and weight > 0, got ",
          project.name, ":", project.gpu_quota, ":", project.weight));
    }
  }
  if (absl::Status valid = search.Validate(); !valid.ok()) return valid;
  if (absl::Status valid = fitter.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("fitter.", valid.message()));
  }
  if (absl::Status valid = carbon.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("carbon.", valid.message()));
  }
  if (absl::Status valid = retry.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("retry.", valid.message()));
  }
  if (absl::Status valid = quarantine.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("quarantine.", valid.message()));
  }
  if (!(reliability.checkpoint_write_s >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reliability.checkpoint_write_s: expected >= 0, got ", reliability.checkpoint_write_s));
  }
  return absl::OkStatus();
}

struct Scheduler::Impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<SchedulerMetrics> metrics;
  std::unique_ptr<StorePlacementState> placement;
  std::unique_ptr<Admitter> admitter;
  std::unique_ptr<services::MetricsServer> metrics_server;
  std::unique_ptr<SweepServiceImpl> sweep_service;
  std::unique_ptr<WorkerServiceImpl> worker_service;
  std::unique_ptr<ResultsServiceImpl> results_service;
  std::unique_ptr<ClusterServiceImpl> cluster_service;
  std::unique_ptr<QueueServiceImpl> queue_service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<Fitter> fitter;
  std::unique_ptr<SearchLoop> search_loop;
  EventBus events;
  std::unique_ptr<services::ChangeListener> listener;
  std::unique_ptr<LeaderLease> leader;
  std::vector<int> subscriptions;  // event-bus callbacks that wake the admitter and search loop
  uint64_t finished_seen = ~uint64_t{0};  // kRunFinished sequence at the last unstartable check
  absl::Time gauges_at = absl::InfinitePast();
  uint64_t changed_seen = ~uint64_t{0};  // kRunChanged sequence at the last gauge refresh
};

Scheduler::Scheduler(SchedulerOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  clock_ = options_.clock != nullptr ? options_.clock : &real_clock_;
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Start(SchedulerOptions options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  std::unique_ptr<Scheduler> scheduler(new Scheduler(std::move(options)));
  if (auto status = scheduler->Init(); !status.ok()) {
    scheduler->Shutdown();
    return status;
  }
  return scheduler;
}

absl::Status Scheduler::Init() {
  database_url_ = options_.database_url;
  if (database_url_.empty()) {
    services::EmbeddedPostgresOptions pg;
    pg.data_dir = absl::StrCat(options_.data_dir, "/postgres");
    auto postgres = services::EmbeddedPostgres::Start(pg);
    if (!postgres.ok()) return postgres.status();
    postgres_ = *std::move(postgres);
    database_url_ = postgres_->ConnectionUrl();
    spdlog::info("embedded PostgreSQL ready url={}", database_url_);
  }
  services::StoreOptions store_options;
  store_options.url = database_url_;
  store_options.pool_size = options_.pool_size;
  auto store = services::Store::Open(store_options);
  if (!store.ok()) return store.status();
  store_ = *std::move(store);

  auto listener =
      services::ChangeListener::Start(database_url_, [this](const services::RunChange& change) {
        impl_->events.PublishRunChange(change.sweep_id, change.to_state);
      });
  if (!listener.ok()) return listener.status();
  impl_->listener = *std::move(listener);
  impl_->leader = std::make_unique<LeaderLease>(store_.get(), options_.leader);
  impl_->leader->Start();

  impl_->metrics = std::make_unique<SchedulerMetrics>(*impl_->registry);
  if (!options_.metrics_address.empty()) {
    auto metrics_server = services::MetricsServer::Start(options_.metrics_address, impl_->registry);
    if (!metrics_server.ok()) return metrics_server.status();
    impl_->metrics_server = *std::move(metrics_server);
  }

  for (const SchedulerOptions::ProjectPolicy& project : options_.projects) {
    if (auto set = store_->SetProjectPolicy(project.name, project.gpu_quota, project.weight);
        !set.ok()) {
      return set;
    }
  }
  impl_->placement =
      std::make_unique<StorePlacementState>(store_.get(), options_.max_pending_per_queue);
  impl_->admitter = std::make_unique<Admitter>(impl_->placement.get(), store_.get(),
                                               impl_->metrics.get(), options_.admission);
  ServiceContext context;
  context.store = store_.get();
  context.placement = impl_->placement.get();
  context.placement_options = options_.admission.placement;
  context.admitter = options_.run_admission ? impl_->admitter.get() : nullptr;
  context.clock = clock_;
  context.metrics = impl_->metrics.get();
  context.lease_ttl = options_.lease_ttl;
  context.heartbeat_interval = options_.heartbeat_interval;
  context.rendezvous = options_.rendezvous;
  context.stopping = &stopping_;
  context.events = &impl_->events;
  context.carbon = options_.carbon;
  context.reliability = options_.reliability;
  context.retry = options_.retry;
  impl_->sweep_service = std::make_unique<SweepServiceImpl>(context);
  impl_->worker_service = std::make_unique<WorkerServiceImpl>(context);
  impl_->results_service = std::make_unique<ResultsServiceImpl>(context);
  impl_->cluster_service = std::make_unique<ClusterServiceImpl>(context);
  impl_->queue_service = std::make_unique<QueueServiceImpl>(context);
  auto server = services::StartGrpcServer(
      options_.listen_address,
      {impl_->sweep_service.get(), impl_->worker_service.get(), impl_->results_service.get(),
       impl_->cluster_service.get(), impl_->queue_service.get()});
  if (!server.ok()) return server.status();
  impl_->server = std::move(server->server);
  grpc_port_ = server->port;

  reaper_ = std::thread([this] {
    while (!stopped_.WaitForNotificationWithTimeout(options_.reap_interval)) {
      if (!impl_->leader->IsLeader()) continue;  // a standby only serves gRPC
      if (auto status = ReapOnce(); !status.ok()) {
        spdlog::warn("lease reaper: {}", status.ToString());
      }
    }
  });
  if (options_.run_admission) {
    impl_->admitter->Start(clock_, [this] { return impl_->leader->IsLeader(); });
    // Woken as runs are submitted or end (any scheduler's, through LISTEN/NOTIFY), not only
    // every admission.period.
    for (Topic topic : {Topic::kRunSubmitted, Topic::kRunFinished}) {
      impl_->subscriptions.push_back(
          impl_->events.Subscribe(topic, [this](const Event&) { impl_->admitter->Wake(); }));
    }
  }
  impl_->fitter = std::make_unique<Fitter>(store_.get(), options_.fitter);
  if (options_.run_fitter) {
    fitter_thread_ = std::thread([this] {
      while (!stopped_.WaitForNotificationWithTimeout(options_.fitter.interval)) {
        if (!impl_->leader->IsLeader()) continue;
        if (auto result = FitOnce(); !result.ok()) {
          spdlog::warn("fitter: {}", result.status().ToString());
        }
      }
    });
  }
  impl_->search_loop = std::make_unique<SearchLoop>(store_.get(), options_.search);
  if (options_.run_search) {
    impl_->search_loop->Start();
    impl_->subscriptions.push_back(impl_->events.Subscribe(
        Topic::kRunFinished, [this](const Event&) { impl_->search_loop->Wake(); }));
  }
  spdlog::info("scheduler listening grpc=127.0.0.1:{} metrics_port={}", grpc_port_, metrics_port());
  return absl::OkStatus();
}

absl::Status Scheduler::ReapOnce() {
  // A worker is declared lost after the same silence that expires its leases.
  const RetryOptions retry = options_.retry;
  auto expired =
      store_->ExpireLeases(clock_->Now(), options_.lease_ttl,
                           [&retry](const v1::Run& run, v1::FailureClass failure_class,
                                    const services::RetryCounts& counts) {
                             return DecideAfterFailure(run, failure_class, counts, retry);
                           });
  if (!expired.ok()) return expired.status();
  for (const services::ExpiredLease& lease : *expired) {
    impl_->metrics->leases_expired.Increment();
    spdlog::warn("lease expired run={} attempt={} worker={} next={}", lease.run_id, lease.attempt,
                 lease.worker_id, services::RunStateName(lease.next_state));
  }
  auto requeued =
      store_->RequeueStaleAdmissions(clock_->Now(), options_.admission.admission_timeout);
  if (!requeued.ok()) return requeued.status();
  if (*requeued > 0) {
    impl_->metrics->admissions_requeued.Increment(*requeued);
    spdlog::warn("{} admissions not leased within {} went back to PENDING", *requeued,
                 absl::FormatDuration(options_.admission.admission_timeout));
  }
  // A run becomes unstartable only when the run it starts from ends: look only after one did.
  const uint64_t finished = impl_->events.Sequence(Topic::kRunFinished);
  if (finished != impl_->finished_seen) {
    auto unstartable = store_->FailUnstartableRuns();
    if (!unstartable.ok()) return unstartable.status();
    impl_->finished_seen = finished;
    for (const services::UnstartableRun& run : *unstartable) {
      const std::string state = services::RunStateName(run.state);
      impl_->metrics->runs_finished.Add({{"state", state}}).Increment();
      spdlog::warn("run ended {} run={}: {}", state, run.run_id, run.reason);
    }
  }
  if (clock_->Now() >= next_quarantine_check_) {
    next_quarantine_check_ = clock_->Now() + options_.quarantine.check_interval;
    if (absl::Status status = QuarantineOnce(); !status.ok()) return status;
  }
  // The gauges count over all runs: only after a run changed state, or every gauge_interval
  // (workers come and go without one).
  const absl::Time now = clock_->Now();
  const uint64_t changed = impl_->events.Sequence(Topic::kRunChanged);
  if (changed != impl_->changed_seen || now - impl_->gauges_at >= options_.gauge_interval ||
      now < impl_->gauges_at) {
    impl_->changed_seen = changed;
    auto counts = store_->Counts();
    if (!counts.ok()) return counts.status();
    impl_->metrics->SetCounts(*counts);
    auto depth = store_->PendingByPriority();
    if (!depth.ok()) return depth.status();
    impl_->metrics->SetQueueDepth(*depth);
    impl_->gauges_at = now;
  }
  return absl::OkStatus();
}

absl::Status Scheduler::QuarantineOnce() {
  const absl::Time now = clock_->Now();
  auto stats = store_->ListWorkerFailureStats(now - options_.quarantine.window);
  if (!stats.ok()) return stats.status();
  for (const QuarantineAction& action : DecideQuarantine(*stats, now, options_.quarantine)) {
    absl::StatusOr<bool> changed =
        action.quarantine ? store_->QuarantineWorker(action.worker_id, action.reason, now)
                          : store_->ReleaseWorker(action.worker_id, action.reason);
    if (!changed.ok()) return changed.status();
    if (!*changed) continue;
    if (action.quarantine) impl_->metrics->quarantines.Increment();
    spdlog::warn("worker {} {}: {}", action.worker_id,
                 action.quarantine ? "quarantined" : "released from quarantine", action.reason);
  }
  return absl::OkStatus();
}

bool Scheduler::IsLeader() const { return impl_->leader && impl_->leader->IsLeader(); }

EventBus& Scheduler::events() { return impl_->events; }

absl::StatusOr<FitPassResult> Scheduler::FitOnce() { return impl_->fitter->RunOnce(); }

SearchLoop* Scheduler::search_loop() { return impl_->search_loop.get(); }
absl::StatusOr<AdmissionPass> Scheduler::AdmitOnce() {
  return impl_->admitter->RunOnce(clock_->Now());
}

int Scheduler::metrics_port() const {
  return impl_->metrics_server ? impl_->metrics_server->port() : 0;
}

void Scheduler::Shutdown() {
  if (stopping_.exchange(true)) {
    shutdown_done_.WaitForNotification();  // another thread is shutting down; let it finish
    return;
  }
  spdlog::info("scheduler shutting down");
  impl_->events.Close();  // loops waiting for a change return now
  if (impl_->sweep_service) impl_->sweep_service->StopWatches();  // watches end at once
  if (impl_->server) {
    // Calls in flight get 2 s to end before they are cancelled.
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  stopped_.Notify();
  for (int id : impl_->subscriptions) impl_->events.Unsubscribe(id);
  impl_->subscriptions.clear();
  if (impl_->admitter) impl_->admitter->Stop();
  if (reaper_.joinable()) reaper_.join();
  if (fitter_thread_.joinable()) fitter_thread_.join();
  if (impl_->search_loop) impl_->search_loop->Stop();
  if (impl_->leader) impl_->leader->Stop();  // a standby takes over at its next attempt
  impl_->listener.reset();
  impl_->metrics_server.reset();
  store_.reset();
  if (postgres_) {
    if (auto status = postgres_->Stop(); !status.ok()) {
      spdlog::warn("stopping embedded PostgreSQL: {}", status.ToString());
    }
  }
  shutdown_done_.Notify();
}

void Scheduler::Wait() { shutdown_done_.WaitForNotification(); }

Scheduler::~Scheduler() { Shutdown(); }

}  // namespace scalelab::scheduler
