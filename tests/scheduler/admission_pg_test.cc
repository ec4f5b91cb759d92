// Admission over a real PostgreSQL: the cycle's decisions are written before anyone acts on them,
// an admission is leased only by its worker, stale admissions go back to the queue, and a
// project's quota set in the store is honoured (scheduler/admission.h, store_admission.cc).
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scheduler/admission.h"
#include "scheduler/store_placement_state.h"
#include "services/common/clock.h"
#include "services/store/store.h"
#include "tests/scheduler/store_cluster.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

constexpr absl::Duration kTtl = absl::Seconds(10);

struct Cluster : StoreCluster {
  std::vector<int64_t> Submit(const std::vector<int>& gpus_per_run, const std::string& project,
                              const std::string& priority = "normal") {
    v1::SweepSpec spec;
    spec.set_name("s");
    spec.set_project(project);
    spec.set_kind(v1::RUN_KIND_PRETRAIN);
    spec.set_max_attempts(2);
    spec.set_priority(priority);
    std::vector<services::NewRun> runs;
    for (size_t run_idx = 0; run_idx < gpus_per_run.size(); ++run_idx) {
      services::NewRun run;
      run.index = static_cast<int>(run_idx);
      run.config.mutable_train()->set_tokens(1000);
      run.config.mutable_resources()->set_gpus(gpus_per_run[run_idx]);
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
};

TEST_CASE("Admission decisions are stored, and only their worker leases them, on those GPUs",
          "[pg][scheduler][admission]") {
  Cluster cluster;
  int64_t small = cluster.RegisterWorker("small", 4, 2);
  int64_t big = cluster.RegisterWorker("big", 8, 4);
  std::vector<int64_t> runs = cluster.Submit({4, 2, 1}, "p");

  AdmissionPass pass = cluster.Pass();
  CHECK(pass.admitted.size() == 2);  // 4 GPUs on big, 2 on small; the 1-GPU run waits
  // Stored before anyone acts: a second store on the same database sees the decisions.
  std::unique_ptr<services::Store> other = Cluster::Open(cluster.url);
  for (int64_t run_id : {runs[0], runs[1]}) {
    auto run = other->GetRun(run_id);
    REQUIRE(run.ok());
    CHECK(run->state() == v1::RUN_STATE_ADMITTED);
  }
  CHECK(cluster.StateOf(runs[2]) == v1::RUN_STATE_PENDING);

  // The small worker never gets the big run admitted elsewhere.
  auto small_leases = other->LeaseAdmitted(small, 8, cluster.clock.Now(), kTtl);
  REQUIRE(small_leases.ok());
  REQUIRE(small_leases->size() == 1);
  CHECK(small_leases->at(0).spec().run_id() == runs[1]);
  CHECK(small_leases->at(0).spec().execution().gpu_indices_size() == 2);
  auto big_leases = other->LeaseAdmitted(big, 8, cluster.clock.Now(), kTtl);
  REQUIRE(big_leases.ok());
  REQUIRE(big_leases->size() == 1);
  CHECK(big_leases->at(0).spec().run_id() == runs[0]);
  CHECK(big_leases->at(0).spec().execution().gpu_indices_size() == 4);
  CHECK(cluster.StateOf(runs[0]) == v1::RUN_STATE_LEASED);
  // Leased once: asking again hands out nothing.
  auto again = other->LeaseAdmitted(big, 8, cluster.clock.Now(), kTtl);
  REQUIRE(again.ok());
  CHECK(again->empty());
  // The next pass sees the leased GPUs as held: nothing is free for the 1-GPU run.
  CHECK(cluster.Pass().admitted.empty());

  auto unknown = other->LeaseAdmitted(999, 1, cluster.clock.Now(), kTtl);
  CHECK(absl::IsFailedPrecondition(unknown.status()));
}

TEST_CASE("An admission held but not leased keeps its GPUs from the next pass, then is requeued",
          "[pg][scheduler][admission]") {
  Cluster cluster;
  int64_t worker = cluster.RegisterWorker("w", 4, 2);
  std::vector<int64_t> runs = cluster.Submit({2, 2}, "p");
  CHECK(cluster.Pass().admitted == std::vector<int64_t>{runs[0]});
  // The admitted run holds both GPUs: a second pass admits nothing onto them.
  CHECK(cluster.Pass().admitted.empty());

  // Not leased within the timeout (the worker died without being declared lost yet).
  auto early = cluster.store->RequeueStaleAdmissions(cluster.clock.Now(), absl::Seconds(30));
  REQUIRE(early.ok());
  CHECK(*early == 0);
  cluster.clock.Advance(absl::Seconds(31));
  auto stale = cluster.store->RequeueStaleAdmissions(cluster.clock.Now(), absl::Seconds(30));
  REQUIRE(stale.ok());
  CHECK(*stale == 1);
  CHECK(cluster.StateOf(runs[0]) == v1::RUN_STATE_PENDING);
  auto none = cluster.store->LeaseAdmitted(worker, 4, cluster.clock.Now(), kTtl);
  REQUIRE(none.ok());
  CHECK(none->empty());
  // The queue moves on: the run is admitted again (queue order is kept).
  CHECK(cluster.Pass().admitted == std::vector<int64_t>{runs[0]});
}

TEST_CASE("A critical sweep is admitted before earlier normal ones, within its project's quota",
          "[pg][scheduler][admission]") {
  Cluster cluster;
  REQUIRE(cluster.store->SetProjectPolicy("capped", 1, 1.0).ok());
  CHECK(absl::IsInvalidArgument(cluster.store->SetProjectPolicy("capped", -1, 1.0)));
  CHECK(absl::IsInvalidArgument(cluster.store->SetProjectPolicy("capped", 1, 0.0)));
  cluster.RegisterWorker("w", 8, 4);
  std::vector<int64_t> normal = cluster.Submit({1, 1, 1}, "open");
  std::vector<int64_t> capped = cluster.Submit({1, 1}, "capped", "critical");
  std::vector<int64_t> critical = cluster.Submit({1}, "open", "critical");

  AdmissionPass pass = cluster.Pass();
  // Critical first: capped's first run (its quota is 1 GPU) and open's critical run; then the
  // normal runs fill the 2 GPUs left.
  CHECK(pass.admitted.size() == 4);
  CHECK(cluster.StateOf(capped[0]) == v1::RUN_STATE_ADMITTED);
  CHECK(cluster.StateOf(capped[1]) == v1::RUN_STATE_PENDING);
  CHECK(cluster.StateOf(critical[0]) == v1::RUN_STATE_ADMITTED);
  CHECK(cluster.StateOf(normal[0]) == v1::RUN_STATE_ADMITTED);
  CHECK(cluster.StateOf(normal[1]) == v1::RUN_STATE_ADMITTED);
  CHECK(cluster.StateOf(normal[2]) == v1::RUN_STATE_PENDING);
  bool quota_reported = false;
  for (const UnplacedRun& unplaced : pass.unplaced) {
    if (unplaced.run_id == capped[1]) quota_reported = unplaced.reason == UnplacedReason::kQuota;
  }
  CHECK(quota_reported);

  auto depth = cluster.store->PendingByPriority();
  REQUIRE(depth.ok());
  CHECK(depth->at("critical") == 1);
  CHECK(depth->at("normal") == 1);
  CHECK(depth->at("low") == 0);
}

}  // namespace
}  // namespace scalelab::scheduler
