// The results store against a real PostgreSQL: sweeps in one transaction, idempotency, leases,
// metric ingest keyed for re-sends, completion with the retry policy, lease expiry by clock.
#include "services/store/store.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "services/common/clock.h"
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

v1::SweepSpec Spec(const std::string& name) {
  v1::SweepSpec spec;
  spec.set_name(name);
  spec.set_project("tests");
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  spec.set_max_attempts(2);
  return spec;
}

std::vector<NewRun> Runs(int n) {
  std::vector<NewRun> runs;
  for (int i = 0; i < n; ++i) {
    NewRun run;
    run.index = i;
    run.config.mutable_model()->set_d_model(32 * (i + 1));
    run.config.mutable_train()->set_tokens(1000);
    run.overrides["model.d_model"] = std::to_string(32 * (i + 1));
    runs.push_back(run);
  }
  return runs;
}

int64_t Register(Store& store, const std::string& name) {
  v1::RegisterRequest request;
  request.set_name(name);
  request.set_hostname("test");
  request.set_cpu_slots(2);
  auto id = store.RegisterWorker(request);
  REQUIRE(id.ok());
  return *id;
}

// What the scheduler's placement does for CPU runs, without the scheduler (which this test may
// not link): the first `max_runs` ready pending runs in queue order, one slot each.
absl::StatusOr<std::vector<v1::Lease>> LeaseFirst(Store& store, int64_t worker, int max_runs,
                                                  absl::Time now, absl::Duration lease_ttl) {
  auto snapshot = store.ReadPlacementSnapshot();
  if (!snapshot.ok()) return snapshot.status();
  std::vector<LeaseGrant> grants;
  for (const StoredPendingRun& run : snapshot->pending) {
    if (static_cast<int>(grants.size()) == max_runs) break;
    if (run.init_ready) grants.push_back({run.run_id, {}, 1});
  }
  return store.CommitLeases(worker, grants, now, lease_ttl);
}

// A new sweep of `runs` runs, `leased` of which are leased to `worker` (ttl 10 s).
struct LeasedSweep {
  int64_t sweep_id = 0;
  std::vector<v1::Lease> leases;
};

LeasedSweep SweepLeasedTo(Store& store, int64_t worker, int runs, int leased, absl::Time now) {
  auto created = store.CreateSweep(Spec("s"), "", "", Runs(runs));
  REQUIRE(created.ok());
  auto leases = LeaseFirst(store, worker, leased, now, absl::Seconds(10));
  REQUIRE(leases.ok());
  REQUIRE(static_cast<int>(leases->size()) == leased);
  return {created->sweep.id(), *std::move(leases)};
}

v1::RunState Retry(const v1::Run& run, v1::FailureClass failure_class) {
  if (failure_class == v1::FAILURE_CLASS_USER) return v1::RUN_STATE_FAILED;
  return run.attempt() < run.max_attempts() ? v1::RUN_STATE_PENDING : v1::RUN_STATE_FAILED;
}

v1::ReportMetricsRequest Report(int64_t worker, const v1::Lease& lease, int64_t step, double loss) {
  v1::ReportMetricsRequest request;
  request.set_worker_id(worker);
  request.set_run_id(lease.spec().run_id());
  request.set_attempt(lease.spec().attempt());
  v1::MetricPoint* point = request.add_points();
  point->set_step(step);
  point->set_tokens(step * 100.0);
  point->set_name("val_loss");
  point->set_value(loss);
  return request;
}

TEST_CASE("A sweep and its runs are stored together and read back", "[pg][store]") {
  auto store = OpenStore();
  auto created = store->CreateSweep(Spec("s1"), "name: s1\n", "", Runs(3));
  REQUIRE(created.ok());
  CHECK(created->created);
  CHECK(created->sweep.total_runs() == 3);
  CHECK(created->sweep.runs_by_state().at("PENDING") == 3);
  CHECK(created->sweep.state() == v1::SWEEP_STATE_RUNNING);

  auto runs = store->ListRuns(created->sweep.id(), v1::RUN_STATE_UNSPECIFIED, 0);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 3);
  CHECK((*runs)[2].config().model().d_model() == 96);
  CHECK((*runs)[2].overrides().at("model.d_model") == "96");
  CHECK(std::isnan((*runs)[0].val_loss()));

  auto missing = store->GetSweep(12345);
  CHECK(absl::IsNotFound(missing.status()));
}

TEST_CASE("The same idempotency key twice creates one sweep, also when racing", "[pg][store]") {
  auto store = OpenStore();
  std::vector<absl::StatusOr<CreateSweepResult>> results(4, absl::UnknownError("unset"));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = store->CreateSweep(Spec("racy"), "", "key-1", Runs(2)); });
  }
  for (auto& thread : threads) thread.join();
  int created = 0;
  for (auto& result : results) {
    REQUIRE(result.ok());
    created += result->created ? 1 : 0;
    CHECK(result->sweep.id() == results[0]->sweep.id());
  }
  CHECK(created == 1);
  auto sweeps = store->ListSweeps("", 0);
  REQUIRE(sweeps.ok());
  CHECK(sweeps->size() == 1);

  // The key names that sweep: another manifest under it is refused, and nothing is stored.
  auto other = store->CreateSweep(Spec("different"), "", "key-1", Runs(5));
  CHECK(absl::IsFailedPrecondition(other.status()));
  CHECK_THAT(std::string(other.status().message()), Catch::Contains("key-1"));
  sweeps = store->ListSweeps("", 0);
  REQUIRE(sweeps.ok());
  CHECK(sweeps->size() == 1);
}

TEST_CASE("Leasing hands each pending run to one worker and starts an attempt", "[pg][store]") {
  auto store = OpenStore();
  FakeClock clock;
  REQUIRE(store->CreateSweep(Spec("s"), "", "", Runs(3)).ok());
  int64_t a = Register(*store, "a");
  int64_t b = Register(*store, "b");
  auto first = LeaseFirst(*store, a, 2, clock.Now(), absl::Seconds(10));
  auto second = LeaseFirst(*store, b, 2, clock.Now(), absl::Seconds(10));
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  REQUIRE(first->size() == 2);
  REQUIRE(second->size() == 1);
  CHECK((*first)[0].spec().attempt() == 1);
  CHECK((*second)[0].spec().run_id() != (*first)[0].spec().run_id());
  CHECK((*second)[0].spec().run_id() != (*first)[1].spec().run_id());
  auto none = LeaseFirst(*store, b, 2, clock.Now(), absl::Seconds(10));
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(absl::IsFailedPrecondition(
      LeaseFirst(*store, 999, 1, clock.Now(), absl::Seconds(10)).status()));
}

TEST_CASE("A re-sent metric batch is stored once and the run becomes RUNNING", "[pg][store]") {
  auto store = OpenStore();
  FakeClock clock;
  int64_t worker = Register(*store, "w");
  const v1::Lease lease = SweepLeasedTo(*store, worker, 1, 1, clock.Now()).leases[0];
  auto first = store->ReportMetrics(Report(worker, lease, 10, 2.5), clock.Now(), absl::Seconds(10));
  auto again = store->ReportMetrics(Report(worker, lease, 10, 2.5), clock.Now(), absl::Seconds(10));
  REQUIRE(first.ok());
  REQUIRE(again.ok());
  CHECK(first->stored == 1);
  CHECK(first->tokens_added == 1000.0);
  CHECK(again->stored == 0);
  CHECK(again->tokens_added == 0.0);
  auto run = store->GetRun(lease.spec().run_id());
  REQUIRE(run.ok());
  CHECK(run->state() == v1::RUN_STATE_RUNNING);
  CHECK(run->step() == 10);
  CHECK(run->val_loss() == 2.5);
  auto metrics = store->GetRunMetrics(lease.spec().run_id(), {});
  REQUIRE(metrics.ok());
  REQUIRE(metrics->series_size() == 1);
  CHECK(metrics->series(0).points_size() == 1);

  // A report for an attempt that is not current is refused and stores nothing.
  v1::ReportMetricsRequest stale = Report(worker, lease, 20, 2.0);
  stale.set_attempt(7);
  CHECK(absl::IsFailedPrecondition(
      store->ReportMetrics(stale, clock.Now(), absl::Seconds(10)).status()));
}

TEST_CASE("An expired lease sends the run back to pending, then fails it when out of attempts",
          "[pg][store]") {
  auto store = OpenStore();
  FakeClock clock;
  REQUIRE(store->CreateSweep(Spec("s"), "", "", Runs(1)).ok());
  int64_t worker = Register(*store, "w");
  const absl::Duration ttl = absl::Seconds(10);
  auto leases = LeaseFirst(*store, worker, 1, clock.Now(), ttl);
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == 1);
  int64_t run_id = (*leases)[0].spec().run_id();

  // Heartbeats keep the lease alive past its first expiry.
  clock.Advance(absl::Seconds(8));
  auto beat = store->Heartbeat(worker, {[&] {
                                 v1::RunAttempt held;
                                 held.set_run_id(run_id);
                                 held.set_attempt(1);
                                 return held;
                               }()},
                               clock.Now(), ttl);
  REQUIRE(beat.ok());
  CHECK(beat->known);
  CHECK(beat->stop.empty());
  clock.Advance(absl::Seconds(8));
  auto expired = store->ExpireLeases(clock.Now(), ttl, Retry);
  REQUIRE(expired.ok());
  CHECK(expired->empty());

  // Silence: the lease ends and the worker is declared lost.
  clock.Advance(absl::Seconds(11));
  expired = store->ExpireLeases(clock.Now(), ttl, Retry);
  REQUIRE(expired.ok());
  REQUIRE(expired->size() == 1);
  CHECK((*expired)[0].next_state == v1::RUN_STATE_PENDING);
  auto run = store->GetRun(run_id);
  REQUIRE(run.ok());
  CHECK(run->state() == v1::RUN_STATE_PENDING);
  CHECK(run->failure_class() == v1::FAILURE_CLASS_NODE_LOST);
  auto lost = store->Heartbeat(worker, {}, clock.Now(), ttl);
  REQUIRE(lost.ok());
  CHECK_FALSE(lost->known);

  // Second attempt on a new worker; it also goes silent and the run is out of attempts.
  int64_t other = Register(*store, "w2");
  leases = LeaseFirst(*store, other, 1, clock.Now(), ttl);
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == 1);
  CHECK((*leases)[0].spec().attempt() == 2);
  clock.Advance(absl::Seconds(11));
  expired = store->ExpireLeases(clock.Now(), ttl, Retry);
  REQUIRE(expired.ok());
  REQUIRE(expired->size() == 1);
  CHECK((*expired)[0].next_state == v1::RUN_STATE_FAILED);
  auto sweep = store->GetSweep(run->sweep_id());
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_FAILED);
}

TEST_CASE("Completing attempts moves runs and the sweep to their final states", "[pg][store]") {
  auto store = OpenStore();
  FakeClock clock;
  int64_t worker = Register(*store, "w");
  LeasedSweep leased = SweepLeasedTo(*store, worker, 2, 2, clock.Now());

  v1::CompleteRunRequest ok;
  ok.set_worker_id(worker);
  ok.set_run_id(leased.leases[0].spec().run_id());
  ok.set_attempt(1);
  ok.set_succeeded(true);
  auto state = store->CompleteRun(ok, Retry);
  REQUIRE(state.ok());
  CHECK(*state == v1::RUN_STATE_SUCCEEDED);
  // The same completion again names an attempt that is over.
  CHECK(store->CompleteRun(ok, Retry).value() == v1::RUN_STATE_SUCCEEDED);

  v1::CompleteRunRequest crashed = ok;
  crashed.set_run_id(leased.leases[1].spec().run_id());
  crashed.set_succeeded(false);
  crashed.set_exit_code(4);
  crashed.set_failure_class(v1::FAILURE_CLASS_USER);
  crashed.set_message("loss diverged");
  state = store->CompleteRun(crashed, Retry);
  REQUIRE(state.ok());
  CHECK(*state == v1::RUN_STATE_FAILED);
  auto sweep = store->GetSweep(leased.sweep_id);
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_FAILED);
  auto run = store->GetRun(crashed.run_id());
  REQUIRE(run.ok());
  CHECK(run->message() == "loss diverged");
  CHECK(run->exit_code() == 4);
}

TEST_CASE("Runs finishing at the same moment still finish their sweep", "[pg][store]") {
  auto store = OpenStore();
  FakeClock clock;
  int64_t worker = Register(*store, "w");
  // Each round races two completions; a sweep left RUNNING would never end for its watchers.
  for (int round = 0; round < 10; ++round) {
    LeasedSweep leased = SweepLeasedTo(*store, worker, 2, 2, clock.Now());
    std::vector<std::thread> threads;
    std::vector<absl::Status> statuses(2);
    for (int i = 0; i < 2; ++i) {
      threads.emplace_back([&, i] {
        v1::CompleteRunRequest done;
        done.set_worker_id(worker);
        done.set_run_id(leased.leases[i].spec().run_id());
        done.set_attempt(leased.leases[i].spec().attempt());
        done.set_succeeded(true);
        statuses[i] = store->CompleteRun(done, Retry).status();
      });
    }
    for (auto& thread : threads) thread.join();
    CHECK(statuses[0].ok());
    CHECK(statuses[1].ok());
    auto sweep = store->GetSweep(leased.sweep_id);
    REQUIRE(sweep.ok());
    CHECK(sweep->state() == v1::SWEEP_STATE_SUCCEEDED);
  }
}

TEST_CASE("Cancelling a sweep cancels unfinished runs and tells their worker to stop",
          "[pg][store]") {
  auto store = OpenStore();
  FakeClock clock;
  int64_t worker = Register(*store, "w");
  LeasedSweep leased = SweepLeasedTo(*store, worker, 3, 1, clock.Now());
  auto cancelled = store->CancelSweep(leased.sweep_id, "changed my mind");
  REQUIRE(cancelled.ok());
  CHECK(cancelled->state() == v1::SWEEP_STATE_CANCELLED);
  CHECK(cancelled->runs_by_state().at("CANCELLED") == 3);
  v1::RunAttempt held;
  held.set_run_id(leased.leases[0].spec().run_id());
  held.set_attempt(1);
  auto beat = store->Heartbeat(worker, {held}, clock.Now(), absl::Seconds(10));
  REQUIRE(beat.ok());
  REQUIRE(beat->stop.size() == 1);
  CHECK(beat->stop[0].run_id() == held.run_id());
  auto none = LeaseFirst(*store, worker, 3, clock.Now(), absl::Seconds(10));
  REQUIRE(none.ok());
  CHECK(none->empty());
  CHECK(absl::IsNotFound(store->CancelSweep(999, "").status()));
}

int64_t RegisterWithGpus(Store& store, const std::string& name, int cpu_slots, int gpus) {
  v1::RegisterRequest request;
  request.set_name(name);
  request.set_hostname("test");
  request.set_cpu_slots(cpu_slots);
  for (int index = 0; index < gpus; ++index) {
    v1::GpuInfo* gpu = request.add_gpus();
    gpu->set_index(index);
    gpu->set_name("NVIDIA H200");
    gpu->set_memory_bytes(int64_t{141} << 30);
  }
  (*request.mutable_labels())["zone"] = "a";
  auto id = store.RegisterWorker(request);
  REQUIRE(id.ok());
  return *id;
}

TEST_CASE("The placement snapshot lists alive workers with their holds and the queue in order",
          "[pg][store][placement]") {
  auto store = OpenStore();
  FakeClock clock;
  int64_t worker = RegisterWithGpus(*store, "g", 2, 4);
  std::vector<NewRun> runs = Runs(3);
  runs[1].config.mutable_resources()->set_gpus(2);
  runs[2].config.mutable_init()->set_from_run(12345);  // never has final weights
  auto created = store->CreateSweep(Spec("s"), "", "", runs);
  REQUIRE(created.ok());
  auto first = store->ReadPlacementSnapshot();
  REQUIRE(first.ok());
  REQUIRE(first->pending.size() == 3);
  CHECK(first->pending[1].resources.gpus() == 2);
  CHECK(first->pending[0].init_ready);
  CHECK_FALSE(first->pending[2].init_ready);
  CHECK(first->pending[0].run_index == 0);
  CHECK(first->pending[2].run_index == 2);
  int64_t gpu_run = first->pending[1].run_id;

  auto leases = store->CommitLeases(worker, {{gpu_run, {1, 3}, 1}}, clock.Now(), absl::Seconds(10));
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == 1);
  CHECK(std::vector<int>((*leases)[0].spec().execution().gpu_indices().begin(),
                         (*leases)[0].spec().execution().gpu_indices().end()) ==
        std::vector<int>{1, 3});

  int64_t lost = RegisterWithGpus(*store, "lost", 1, 0);
  clock.Advance(absl::Seconds(30));
  v1::RunAttempt held;
  held.set_run_id(gpu_run);
  held.set_attempt(1);
  REQUIRE(store->Heartbeat(worker, {held}, clock.Now(), absl::Seconds(10)).ok());
  REQUIRE(store->ExpireLeases(clock.Now(), absl::Seconds(20), Retry).ok());  // `lost` is silent

  auto second = store->ReadPlacementSnapshot();
  REQUIRE(second.ok());
  REQUIRE(second->workers.size() == 1);
  const StoredWorker& stored = second->workers[0];
  CHECK(stored.worker_id == worker);
  CHECK(stored.worker_id != lost);
  CHECK(stored.inventory.cpu_slots() == 2);
  REQUIRE(stored.inventory.gpus_size() == 4);
  CHECK(stored.inventory.gpus(3).memory_bytes() == int64_t{141} << 30);
  CHECK(stored.inventory.labels().at("zone") == "a");
  REQUIRE(stored.held.size() == 1);
  CHECK(stored.held[0].run_id == gpu_run);
  CHECK(stored.held[0].gpu_indices == std::vector<int>{1, 3});
  CHECK(stored.held[0].cpu_slots == 1);
  CHECK(second->pending.size() == 2);
}

TEST_CASE("Snapshots keep each worker's own inventory as workers come and go between them",
          "[pg][store][placement]") {
  // Inventories are parsed once per worker and kept between snapshots (Store::inventories_):
  // a worker registered after one snapshot appears in the next with its own inventory, and a
  // worker registered with a lower id than one already parsed (the ids of a snapshot's read need
  // not arrive in order) is read too.
  auto store = OpenStore();
  const int64_t first = RegisterWithGpus(*store, "a", 2, 1);
  auto before = store->ReadPlacementSnapshot();
  REQUIRE(before.ok());
  REQUIRE(before->workers.size() == 1);
  const int64_t second = RegisterWithGpus(*store, "b", 3, 4);
  auto after = store->ReadPlacementSnapshot();
  REQUIRE(after.ok());
  REQUIRE(after->workers.size() == 2);
  CHECK(after->workers[0].worker_id == first);
  CHECK(after->workers[0].inventory.gpus_size() == 1);
  CHECK(after->workers[1].worker_id == second);
  CHECK(after->workers[1].inventory.cpu_slots() == 3);
  CHECK(after->workers[1].inventory.gpus_size() == 4);
  // A row whose id is below the highest one parsed, as a late commit would leave it.
  {
    pqxx::connection conn(store->url());
    pqxx::work txn(conn);
    txn.exec_params(
        "INSERT INTO workers (id, name, hostname, cpu_slots, gpus, inventory, state) "
        "VALUES ($1, 'late', 'h', 5, 0, '{\"name\": \"late\", \"cpuSlots\": 5}', 'ALIVE')",
        first - 1000);
    txn.commit();
  }
  auto late = store->ReadPlacementSnapshot();
  REQUIRE(late.ok());
  REQUIRE(late->workers.size() == 3);
  CHECK(late->workers[0].worker_id == first - 1000);
  CHECK(late->workers[0].inventory.cpu_slots() == 5);
  CHECK(late->workers[0].inventory.gpus_size() == 0);
  CHECK(late->workers[2].inventory.gpus_size() == 4);
}

TEST_CASE("A commit drops grants whose run is gone or whose GPUs or slots are taken",
          "[pg][store][placement]") {
  auto store = OpenStore();
  FakeClock clock;
  int64_t worker = RegisterWithGpus(*store, "g", 2, 2);
  std::vector<NewRun> runs = Runs(4);
  for (NewRun& run : runs) run.config.mutable_resources()->set_gpus(1);
  REQUIRE(store->CreateSweep(Spec("s"), "", "", runs).ok());
  auto snapshot = store->ReadPlacementSnapshot();
  REQUIRE(snapshot.ok());
  std::vector<int64_t> ids;
  for (const StoredPendingRun& run : snapshot->pending) ids.push_back(run.run_id);

  auto leases = store->CommitLeases(worker, {{ids[0], {0}, 1}}, clock.Now(), absl::Seconds(10));
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == 1);
  // GPU 0 is held by ids[0]; ids[0] is no longer pending; GPU 7 does not exist; GPU 1 twice in
  // one call. Only the first grant of GPU 1 is kept.
  leases = store->CommitLeases(
      worker,
      {{ids[1], {0}, 1}, {ids[0], {1}, 1}, {ids[2], {7}, 1}, {ids[2], {1}, 1}, {ids[3], {1}, 1}},
      clock.Now(), absl::Seconds(10));
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == 1);
  CHECK((*leases)[0].spec().run_id() == ids[2]);
  CHECK((*leases)[0].spec().execution().gpu_indices(0) == 1);
  // Both CPU slots are now held as well.
  leases = store->CommitLeases(worker, {{ids[3], {}, 1}}, clock.Now(), absl::Seconds(10));
  REQUIRE(leases.ok());
  CHECK(leases->empty());
  auto run = store->GetRun(ids[3]);
  REQUIRE(run.ok());
  CHECK(run->state() == v1::RUN_STATE_PENDING);
  CHECK(run->attempt() == 0);
}

TEST_CASE("Two commits racing for the same runs lease each run once", "[pg][store][placement]") {
  auto store = OpenStore();
  FakeClock clock;
  REQUIRE(store->CreateSweep(Spec("s"), "", "", Runs(20)).ok());
  int64_t a = RegisterWithGpus(*store, "a", 20, 0);
  int64_t b = RegisterWithGpus(*store, "b", 20, 0);
  auto snapshot = store->ReadPlacementSnapshot();
  REQUIRE(snapshot.ok());
  // Two schedulers that decided the same runs for different workers.
  std::vector<LeaseGrant> grants;
  for (const StoredPendingRun& run : snapshot->pending) grants.push_back({run.run_id, {}, 1});
  std::vector<absl::StatusOr<std::vector<v1::Lease>>> results(2, absl::UnknownError("unset"));
  std::thread first(
      [&] { results[0] = store->CommitLeases(a, grants, clock.Now(), absl::Seconds(10)); });
  std::thread second(
      [&] { results[1] = store->CommitLeases(b, grants, clock.Now(), absl::Seconds(10)); });
  first.join();
  second.join();
  REQUIRE(results[0].ok());
  REQUIRE(results[1].ok());
  std::set<int64_t> leased;
  for (const auto& result : results) {
    for (const v1::Lease& lease : *result) {
      CHECK(leased.insert(lease.spec().run_id()).second);
      CHECK(lease.spec().attempt() == 1);
    }
  }
  CHECK(leased.size() == 20);
}

}  // namespace
}  // namespace scalelab::services
