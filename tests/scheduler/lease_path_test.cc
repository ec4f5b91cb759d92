// The lease path end to end over a real PostgreSQL: a store snapshot, the placement policy and
// the store's commit (scheduler/leasing.h), as WorkerService.LeaseRuns runs it.
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/leasing.h"
#include "scheduler/retry_policy.h"
#include "scheduler/store_placement_state.h"
#include "services/common/clock.h"
#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

constexpr absl::Duration kTtl = absl::Seconds(10);

// A store over a fresh database and the scheduler's view of it.
struct Cluster {
  std::unique_ptr<services::Store> store;
  std::unique_ptr<StorePlacementState> state;
  services::FakeClock clock;

  Cluster() {
    services::StoreOptions options;
    options.url = scalelab::testing::FreshDatabaseUrl();
    auto opened = services::Store::Open(options);
    REQUIRE(opened.ok());
    store = *std::move(opened);
    state = std::make_unique<StorePlacementState>(store.get());
  }

  int64_t Register(const std::string& name, int cpu_slots, int gpus) {
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
    auto id = store->RegisterWorker(request);
    REQUIRE(id.ok());
    return *id;
  }

  // A sweep of one run per entry, asking for that many GPUs (0 = a CPU run). Returns run ids in
  // run index order.
  std::vector<int64_t> Submit(const std::vector<int>& gpus_per_run, int64_t init_from_run = 0) {
    v1::SweepSpec spec;
    spec.set_name("s");
    spec.set_project("tests");
    spec.set_kind(v1::RUN_KIND_PRETRAIN);
    spec.set_max_attempts(2);
    std::vector<services::NewRun> runs;
    for (size_t run_idx = 0; run_idx < gpus_per_run.size(); ++run_idx) {
      services::NewRun run;
      run.index = static_cast<int>(run_idx);
      run.config.mutable_train()->set_tokens(1000);
      run.config.mutable_resources()->set_gpus(gpus_per_run[run_idx]);
      run.config.mutable_init()->set_from_run(init_from_run);
      runs.push_back(run);
    }
    auto created = store->CreateSweep(spec, "", "", runs);
    REQUIRE(created.ok());
    auto listed = store->ListRuns(created->sweep.id(), v1::RUN_STATE_UNSPECIFIED, 0);
    REQUIRE(listed.ok());
    std::vector<int64_t> ids;
    for (const v1::Run& run : *listed) ids.push_back(run.id());
    return ids;
  }

  std::vector<v1::Lease> Lease(int64_t worker_id, int free_slots) {
    auto leases = GrantLeases(*state, *store, worker_id, free_slots, clock.Now(), kTtl, {});
    REQUIRE(leases.ok());
    return *leases;
  }

  void Complete(int64_t worker_id, const v1::Lease& lease) {
    v1::CompleteRunRequest done;
    done.set_worker_id(worker_id);
    done.set_run_id(lease.spec().run_id());
    done.set_attempt(lease.spec().attempt());
    done.set_succeeded(true);
    REQUIRE(store
                ->CompleteRun(done,
                              [](const v1::Run&, v1::FailureClass) { return v1::RUN_STATE_FAILED; })
                .ok());
  }
};

std::vector<int> GpusOf(const v1::Lease& lease) {
  return {lease.spec().execution().gpu_indices().begin(),
          lease.spec().execution().gpu_indices().end()};
}

std::vector<int64_t> RunIds(const std::vector<v1::Lease>& leases) {
  std::vector<int64_t> ids;
  for (const v1::Lease& lease : leases) ids.push_back(lease.spec().run_id());
  return ids;
}

TEST_CASE("CPU runs are leased in queue order, never more than the worker asked for",
          "[pg][scheduler][placement]") {
  Cluster cluster;
  int64_t worker = cluster.Register("cpu", 4, 0);
  std::vector<int64_t> first_sweep = cluster.Submit({0, 0, 0});
  std::vector<int64_t> second_sweep = cluster.Submit({0, 0});

  std::vector<v1::Lease> leases = cluster.Lease(worker, 2);
  CHECK(RunIds(leases) == std::vector<int64_t>{first_sweep[0], first_sweep[1]});
  CHECK(GpusOf(leases[0]).empty());
  // It asks for 3, but the store knows only 2 of its 4 slots are free.
  leases = cluster.Lease(worker, 3);
  CHECK(RunIds(leases) == std::vector<int64_t>{first_sweep[2], second_sweep[0]});
  CHECK(cluster.Lease(worker, 3).empty());
  CHECK(cluster.Lease(worker, 0).empty());
  cluster.Complete(worker, leases[0]);
  leases = cluster.Lease(worker, 1);
  CHECK(RunIds(leases) == std::vector<int64_t>{second_sweep[1]});

  auto unknown = GrantLeases(*cluster.state, *cluster.store, 999, 1, cluster.clock.Now(), kTtl, {});
  CHECK(absl::IsFailedPrecondition(unknown.status()));
}

TEST_CASE("A 2-GPU run goes only to a worker with 2 free GPUs, and its lease names them",
          "[pg][scheduler][placement]") {
  Cluster cluster;
  int64_t big = cluster.Register("big", 4, 3);
  int64_t one_gpu_run = cluster.Submit({1})[0];
  std::vector<v1::Lease> leases = cluster.Lease(big, 4);
  REQUIRE(leases.size() == 1);
  CHECK(leases[0].spec().run_id() == one_gpu_run);
  CHECK(GpusOf(leases[0]) == std::vector<int>{0});

  int64_t small = cluster.Register("small", 4, 1);
  int64_t two_gpu_run = cluster.Submit({2})[0];
  CHECK(cluster.Lease(small, 4).empty());
  leases = cluster.Lease(big, 3);
  REQUIRE(leases.size() == 1);
  CHECK(leases[0].spec().run_id() == two_gpu_run);
  CHECK(GpusOf(leases[0]) == std::vector<int>{1, 2});
  CHECK(leases[0].spec().attempt() == 1);
  auto run = cluster.store->GetRun(two_gpu_run);
  REQUIRE(run.ok());
  CHECK(run->state() == v1::RUN_STATE_LEASED);
  CHECK(run->worker_id() == big);
}

TEST_CASE("GPUs held by a running run are not granted again until it ends",
          "[pg][scheduler][placement]") {
  Cluster cluster;
  int64_t worker = cluster.Register("gpu", 4, 2);
  std::vector<int64_t> runs = cluster.Submit({2, 2, 0});
  std::vector<v1::Lease> leases = cluster.Lease(worker, 4);
  // The first run takes both GPUs; the second waits; the CPU run behind it still fits.
  REQUIRE(RunIds(leases) == std::vector<int64_t>{runs[0], runs[2]});
  CHECK(GpusOf(leases[0]) == std::vector<int>{0, 1});
  v1::ReportMetricsRequest report;
  report.set_worker_id(worker);
  report.set_run_id(runs[0]);
  report.set_attempt(1);
  v1::MetricPoint* point = report.add_points();
  point->set_step(1);
  point->set_name("train_loss");
  point->set_value(3.0);
  REQUIRE(cluster.store->ReportMetrics(report, cluster.clock.Now(), kTtl).ok());
  REQUIRE(cluster.store->GetRun(runs[0])->state() == v1::RUN_STATE_RUNNING);

  CHECK(cluster.Lease(worker, 2).empty());
  // Even a scheduler that decided otherwise cannot have them: the store re-checks.
  auto forced = cluster.store->CommitLeases(worker, {{runs[1], {1}, 1}}, cluster.clock.Now(), kTtl);
  REQUIRE(forced.ok());
  CHECK(forced->empty());

  cluster.Complete(worker, leases[0]);
  leases = cluster.Lease(worker, 2);
  REQUIRE(RunIds(leases) == std::vector<int64_t>{runs[1]});
  CHECK(GpusOf(leases[0]) == std::vector<int>{0, 1});
}

TEST_CASE("Concurrent LeaseRuns calls never grant the same run twice",
          "[pg][scheduler][placement]") {
  Cluster cluster;
  std::vector<int64_t> workers = {cluster.Register("a", 8, 0), cluster.Register("b", 8, 0)};
  std::vector<int64_t> runs = cluster.Submit(std::vector<int>(20, 0));
  // Two callers per worker, as two schedulers (or a retried call) would be.
  std::vector<std::vector<v1::Lease>> granted(4);
  std::vector<absl::Status> errors(4);
  std::vector<std::thread> threads;
  for (int thread_idx = 0; thread_idx < 4; ++thread_idx) {
    threads.emplace_back([&, thread_idx] {
      for (int call = 0; call < 5; ++call) {
        auto leases = GrantLeases(*cluster.state, *cluster.store, workers[thread_idx % 2], 8,
                                  cluster.clock.Now(), kTtl, {});
        if (!leases.ok()) {
          errors[thread_idx] = leases.status();
          return;
        }
        granted[thread_idx].insert(granted[thread_idx].end(), leases->begin(), leases->end());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const absl::Status& error : errors) CHECK(error.ok());
  // Whatever the races left free is taken now, one caller at a time.
  for (int64_t worker : workers) {
    std::vector<v1::Lease> rest = cluster.Lease(worker, 8);
    granted[0].insert(granted[0].end(), rest.begin(), rest.end());
  }

  std::set<int64_t> leased;
  for (const std::vector<v1::Lease>& leases : granted) {
    for (const v1::Lease& lease : leases) {
      CHECK(leased.insert(lease.spec().run_id()).second);
      CHECK(lease.spec().attempt() == 1);
    }
  }
  CHECK(leased.size() == 16);  // both workers full: 2 x 8 slots
  for (int64_t worker : workers) {
    auto on_worker = cluster.store->ListRuns(0, v1::RUN_STATE_LEASED, 0);
    REQUIRE(on_worker.ok());
    int count = 0;
    for (const v1::Run& run : *on_worker) count += run.worker_id() == worker ? 1 : 0;
    CHECK(count == 8);
  }
}

TEST_CASE("A run starting from another run's final weights waits until they are stored",
          "[pg][scheduler][placement]") {
  Cluster cluster;
  int64_t worker = cluster.Register("cpu", 4, 0);
  int64_t parent = cluster.Submit({0})[0];
  int64_t child = cluster.Submit({0}, parent)[0];
  std::vector<v1::Lease> leases = cluster.Lease(worker, 4);
  REQUIRE(RunIds(leases) == std::vector<int64_t>{parent});
  CHECK(cluster.Lease(worker, 3).empty());

  v1::ReportArtifactsRequest report;
  report.set_worker_id(worker);
  report.set_run_id(parent);
  report.set_attempt(1);
  v1::Artifact* checkpoint = report.add_artifacts();
  checkpoint->set_kind("checkpoint");
  checkpoint->set_step(5);
  checkpoint->set_location("/ckpt/5.pt");
  REQUIRE(cluster.store->ReportArtifacts(report).ok());
  CHECK(cluster.Lease(worker, 3).empty());  // a checkpoint is not final weights

  checkpoint->set_kind("final");
  checkpoint->set_step(10);
  checkpoint->set_location("/out/final.pt");
  auto stored = cluster.store->ReportArtifacts(report);
  REQUIRE(stored.ok());
  // Final weights of an attempt that has not succeeded (yet) are not the run's result.
  CHECK(cluster.Lease(worker, 3).empty());

  v1::CompleteRunRequest done;
  done.set_worker_id(worker);
  done.set_run_id(parent);
  done.set_attempt(1);
  done.set_succeeded(true);
  REQUIRE(cluster.store->CompleteRun(done, RetryDeciderWith()).ok());
  leases = cluster.Lease(worker, 3);
  REQUIRE(RunIds(leases) == std::vector<int64_t>{child});
  CHECK(leases[0].spec().init_artifact().id() == (*stored)[0].id());
  CHECK(leases[0].spec().init_artifact().location() == "/out/final.pt");
}

TEST_CASE("A run starting from a run that failed without weights fails instead of waiting",
          "[pg][scheduler][placement]") {
  Cluster cluster;
  int64_t worker = cluster.Register("cpu", 4, 0);
  int64_t parent = cluster.Submit({0})[0];
  int64_t child = cluster.Submit({0}, parent)[0];
  int64_t unrelated = cluster.Submit({0})[0];
  REQUIRE(RunIds(cluster.Lease(worker, 1)) == std::vector<int64_t>{parent});

  auto none = cluster.store->FailUnstartableRuns();
  REQUIRE(none.ok());
  CHECK(none->empty());  // the parent is still running: the child waits

  v1::CompleteRunRequest done;
  done.set_worker_id(worker);
  done.set_run_id(parent);
  done.set_attempt(1);
  done.set_succeeded(false);
  done.set_exit_code(4);
  done.set_failure_class(v1::FAILURE_CLASS_USER);
  REQUIRE(cluster.store->CompleteRun(done, RetryDeciderWith()).ok());

  auto failed = cluster.store->FailUnstartableRuns();
  REQUIRE(failed.ok());
  REQUIRE(failed->size() == 1);
  CHECK((*failed)[0].run_id == child);
  auto run = cluster.store->GetRun(child);
  REQUIRE(run.ok());
  CHECK(run->state() == v1::RUN_STATE_FAILED);
  CHECK(run->failure_class() == v1::FAILURE_CLASS_USER);
  CHECK(run->message() == absl::StrCat("init.from_run: run ", parent,
                                       " ended FAILED without final weights; this run cannot "
                                       "start"));
  auto sweep = cluster.store->GetSweep(run->sweep_id());
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_FAILED);
  // The unrelated run is untouched and still leases.
  CHECK(RunIds(cluster.Lease(worker, 3)) == std::vector<int64_t>{unrelated});
}

}  // namespace
}  // namespace scalelab::scheduler
