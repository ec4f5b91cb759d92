// Failures in the store against a real PostgreSQL: fencing by lease token on every report, the
// retry decision's backoff, avoided worker and budgets persisted with the run, and quarantine.
#include <catch2/catch.hpp>
#include <string>

#include "absl/time/clock.h"
#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::services {
namespace {

std::unique_ptr<Store> OpenStore() {
  StoreOptions options;
  options.url = scalelab::testing::FreshDatabaseUrl();
  auto store = Store::Open(options);
  REQUIRE(store.ok());
  return *std::move(store);
}

int64_t Register(Store& store, const std::string& name) {
  v1::RegisterRequest request;
  request.set_name(name);
  request.set_hostname("test");
  request.set_cpu_slots(1);
  auto id = store.RegisterWorker(request);
  REQUIRE(id.ok());
  return *id;
}

int64_t OneRunSweep(Store& store) {
  v1::SweepSpec spec;
  spec.set_name("failures");
  spec.set_project("tests");
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  spec.set_max_attempts(3);
  NewRun run;
  run.config.mutable_train()->set_tokens(1000);
  auto created = store.CreateSweep(spec, "", "", {run});
  REQUIRE(created.ok());
  auto runs = store.ListRuns(created->sweep.id(), v1::RUN_STATE_UNSPECIFIED, 0);
  REQUIRE(runs.ok());
  return runs->at(0).id();
}

// Leases `run_id` to `worker` when the store lets it (empty when it refused or dropped it).
std::vector<v1::Lease> Lease(Store& store, int64_t worker, int64_t run_id, absl::Time now) {
  auto leases = store.CommitLeases(worker, {{run_id, {}, 1}}, now, absl::Seconds(10));
  REQUIRE(leases.ok());
  return *leases;
}

TEST_CASE("Reports carrying a lease token that is not the run's current lease are refused",
          "[pg][store][failures]") {
  auto store = OpenStore();
  const int64_t worker = Register(*store, "w");
  const int64_t run_id = OneRunSweep(*store);
  const absl::Time now = absl::Now();
  auto first = Lease(*store, worker, run_id, now);
  REQUIRE(first.size() == 1);
  const int64_t stale_token = first[0].spec().lease_token();
  CHECK(stale_token > 0);

  // The lease expires (NODE_LOST); the policy requeues at once; the same worker leases again.
  auto expired = store->ExpireLeases(
      now + absl::Seconds(30), absl::Hours(1),
      [](const v1::Run&, v1::FailureClass) { return RetryDecision(v1::RUN_STATE_PENDING); });
  REQUIRE(expired.ok());
  REQUIRE(expired->size() == 1);
  auto second = Lease(*store, worker, run_id, now + absl::Seconds(31));
  REQUIRE(second.size() == 1);
  const int64_t current_token = second[0].spec().lease_token();
  CHECK(current_token > stale_token);

  const std::string expected = "lease token " + std::to_string(stale_token) +
                               " is not the current lease of run " + std::to_string(run_id) +
                               " (current " + std::to_string(current_token) + ")";
  // Same worker and run, the attempt number of the new lease: only the token tells them apart.
  v1::ReportMetricsRequest metrics;
  metrics.set_worker_id(worker);
  metrics.set_run_id(run_id);
  metrics.set_attempt(2);
  metrics.set_lease_token(stale_token);
  v1::MetricPoint* point = metrics.add_points();
  point->set_step(1);
  point->set_name("train_loss");
  point->set_value(3.0);
  auto refused = store->ReportMetrics(metrics, now, absl::Seconds(10));
  REQUIRE(absl::IsFailedPrecondition(refused.status()));
  CHECK(refused.status().message() == expected);

  v1::ReportArtifactsRequest artifacts;
  artifacts.set_worker_id(worker);
  artifacts.set_run_id(run_id);
  artifacts.set_attempt(2);
  artifacts.set_lease_token(stale_token);
  v1::Artifact* artifact = artifacts.add_artifacts();
  artifact->set_kind("checkpoint");
  artifact->set_location("/tmp/x");
  artifact->set_step(1);
  CHECK(store->ReportArtifacts(artifacts).status().message() == expected);

  v1::ReportEvalsRequest evals;
  evals.set_worker_id(worker);
  evals.set_run_id(run_id);
  evals.set_attempt(2);
  evals.set_lease_token(stale_token);
  CHECK(store->ReportEvals(evals).status().message() == expected);

  v1::CompleteRunRequest complete;
  complete.set_worker_id(worker);
  complete.set_run_id(run_id);
  complete.set_attempt(2);
  complete.set_succeeded(true);
  complete.set_lease_token(stale_token);
  auto completed = store->CompleteRun(
      complete, [](const v1::Run&, v1::FailureClass) { return v1::RUN_STATE_FAILED; });
  CHECK(completed.status().message() == expected);

  v1::RunAttempt held;
  held.set_run_id(run_id);
  held.set_attempt(2);
  held.set_lease_token(stale_token);
  auto beat = store->Heartbeat(worker, {held}, now, absl::Seconds(10));
  REQUIRE(beat.ok());
  REQUIRE(beat->fenced.size() == 1);
  CHECK(beat->fenced[0] == expected);
  REQUIRE(beat->stop.size() == 1);  // not renewed: the worker must stop it

  // Nothing of the refused reports was stored; the current token (and 0, an old worker) pass.
  auto stored = store->GetRunMetrics(run_id, {});
  REQUIRE(stored.ok());
  CHECK(stored->series_size() == 0);
  metrics.set_lease_token(current_token);
  CHECK(store->ReportMetrics(metrics, now, absl::Seconds(10)).ok());
  metrics.set_lease_token(0);
  CHECK(store->ReportMetrics(metrics, now, absl::Seconds(10)).ok());
  complete.set_lease_token(current_token);
  CHECK(store
            ->CompleteRun(complete,
                          [](const v1::Run&, v1::FailureClass) { return v1::RUN_STATE_FAILED; })
            .value() == v1::RUN_STATE_SUCCEEDED);
}

TEST_CASE(
    "A retry waits out its backoff, records the avoided worker and its budget; quarantined "
    "workers get no leases",
    "[pg][store][failures]") {
  auto store = OpenStore();
  const int64_t bad = Register(*store, "bad");
  const int64_t good = Register(*store, "good");
  const int64_t run_id = OneRunSweep(*store);
  const absl::Time now = absl::Now();
  auto leased = Lease(*store, bad, run_id, now);
  REQUIRE(leased.size() == 1);

  v1::CompleteRunRequest failed;
  failed.set_worker_id(bad);
  failed.set_run_id(run_id);
  failed.set_attempt(1);
  failed.set_lease_token(leased[0].spec().lease_token());
  failed.set_exit_code(-1);
  failed.set_term_signal(9);
  failed.set_failure_class(v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  failed.set_failure_evidence("killed by signal 9 not sent by the worker");
  RetryCounts seen;
  auto state = store->CompleteRun(
      failed, [&seen](const v1::Run&, v1::FailureClass failure_class, const RetryCounts& counts) {
        seen = counts;
        RetryDecision decision(v1::RUN_STATE_PENDING);
        decision.backoff = absl::Seconds(2);
        decision.avoid_worker = failure_class == v1::FAILURE_CLASS_SYSTEM_SOFTWARE;
        decision.spends = RetryDecision::Budget::kInfra;
        return decision;
      });
  REQUIRE(state.ok());
  CHECK(*state == v1::RUN_STATE_PENDING);
  CHECK(seen.infra_retries == 0);

  // Inside the backoff the run is neither in the snapshot nor leasable.
  auto snapshot = store->ReadPlacementSnapshot();
  REQUIRE(snapshot.ok());
  CHECK(snapshot->pending.empty());
  CHECK(Lease(*store, good, run_id, now).empty());
  // The evidence went with the attempt.
  auto attempts = store->ListAttempts(0);
  REQUIRE(attempts.ok());
  REQUIRE(attempts->size() == 1);
  CHECK(attempts->at(0).failure_class == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  CHECK(attempts->at(0).evidence == "killed by signal 9 not sent by the worker");
  CHECK(attempts->at(0).term_signal == 9);

  // After it, the snapshot names the avoided worker; the budget spent is seen by the next decision.
  std::vector<StoredPendingRun> pending;
  for (int poll = 0; poll < 60 && pending.empty(); ++poll) {
    absl::SleepFor(absl::Milliseconds(100));
    snapshot = store->ReadPlacementSnapshot();
    REQUIRE(snapshot.ok());
    pending = snapshot->pending;
  }
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].avoid_workers == std::vector<int64_t>{bad});
  auto again = Lease(*store, good, run_id, absl::Now());
  REQUIRE(again.size() == 1);
  failed.set_worker_id(good);
  failed.set_attempt(2);
  failed.set_lease_token(again[0].spec().lease_token());
  REQUIRE(store
              ->CompleteRun(failed,
                            [&seen](const v1::Run&, v1::FailureClass, const RetryCounts& counts) {
                              seen = counts;
                              return RetryDecision(v1::RUN_STATE_FAILED);
                            })
              .ok());
  CHECK(seen.infra_retries == 1);

  // Quarantine: stats count the failures per worker; a quarantined worker heartbeats but gets no
  // lease until released; both events are recorded.
  auto stats = store->ListWorkerFailureStats(now - absl::Hours(1));
  REQUIRE(stats.ok());
  REQUIRE(stats->size() == 2);
  CHECK(stats->at(0).infra_failures == 1);
  CHECK(stats->at(1).infra_failures == 1);
  REQUIRE(store->QuarantineWorker(bad, "test", absl::Now()).value());
  CHECK_FALSE(store->QuarantineWorker(bad, "twice", absl::Now()).value());
  auto beat = store->Heartbeat(bad, {}, absl::Now(), absl::Seconds(10));
  REQUIRE(beat.ok());
  CHECK(beat->known);
  const int64_t second_run = OneRunSweep(*store);
  CHECK(Lease(*store, bad, second_run, absl::Now()).empty());
  v1::HealthCheck disk;
  disk.set_name("disk");
  disk.set_ok(true);
  REQUIRE(store->Heartbeat(bad, {}, absl::Now(), absl::Seconds(10), {disk}).ok());
  stats = store->ListWorkerFailureStats(now - absl::Hours(1));
  REQUIRE(stats.ok());
  CHECK(stats->at(0).state == "QUARANTINED");
  CHECK(stats->at(0).healthy_streak == 2);
  REQUIRE(store->ReleaseWorker(bad, "healthy").value());
  CHECK(Lease(*store, bad, second_run, absl::Now()).size() == 1);
  auto events = store->ListQuarantineEvents(bad);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 2);
  CHECK(events->at(0).event == "QUARANTINED");
  CHECK(events->at(1).event == "RELEASED");
}

}  // namespace
}  // namespace scalelab::services
