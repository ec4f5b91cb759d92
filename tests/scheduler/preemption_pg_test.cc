// Preemption over a real PostgreSQL (scheduler/preemption_pass.h, store_preemption.cc): the
// decision and the preemptor's admission are stored together, the victim's worker is told on its
// heartbeat, the preemptor is neither leased nor requeued nor counted twice while its victim
// runs, and is leased on the victim's GPUs once the victim ended PREEMPTED and was requeued.
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/admission.h"
#include "scheduler/retry_policy.h"
#include "scheduler/store_placement_state.h"
#include "services/common/clock.h"
#include "services/store/store.h"
#include "tests/scheduler/store_cluster.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

constexpr absl::Duration kTtl = absl::Seconds(60);

struct Cluster : StoreCluster {
  int64_t Register(int cpu_slots, int gpus) { return RegisterWorker("w", cpu_slots, gpus); }

  std::pair<int64_t, int64_t> Submit(int gpus, const std::string& priority) {
    v1::SweepSpec spec;
    spec.set_name(priority);
    spec.set_project("p");
    spec.set_kind(v1::RUN_KIND_PRETRAIN);
    spec.set_max_attempts(2);
    spec.set_priority(priority);
    services::NewRun run;
    run.config.mutable_train()->set_tokens(1000);
    run.config.mutable_resources()->set_gpus(gpus);
    auto created = store->CreateSweep(spec, "", "", {run});
    REQUIRE(created.ok());
    auto listed = store->ListRuns(created->sweep.id(), v1::RUN_STATE_UNSPECIFIED, 0);
    REQUIRE(listed.ok());
    REQUIRE(listed->size() == 1);
    return {created->sweep.id(), listed->at(0).id()};
  }

  AdmissionPass Pass() {
    PreemptionOptions preemption;
    return StoreCluster::Pass(&preemption);
  }
};

TEST_CASE(
    "A critical run preempts a low run: stored with its reason, held, then leased on its GPUs",
    "[pg][scheduler][preemption]") {
  Cluster cluster;
  const int64_t worker = cluster.Register(4, 2);
  const auto [low_sweep, low] = cluster.Submit(2, "low");
  CHECK(cluster.Pass().admitted == std::vector<int64_t>{low});
  auto leased = cluster.store->LeaseAdmitted(worker, 4, cluster.clock.Now(), kTtl);
  REQUIRE(leased.ok());
  REQUIRE(leased->size() == 1);
  const v1::RunSpec victim = leased->at(0).spec();

  const auto [critical_sweep, critical] = cluster.Submit(2, "critical");
  AdmissionPass pass = cluster.Pass();
  CHECK(pass.admitted.empty());
  CHECK(pass.preemptors == std::vector<int64_t>{critical});
  CHECK(pass.preempted == 1);
  CHECK(cluster.StateOf(critical) == v1::RUN_STATE_ADMITTED);
  CHECK(cluster.StateOf(low) == v1::RUN_STATE_LEASED);  // still running: it checkpoints first
  auto rows = cluster.store->ListPreemptions(/*in_flight_only=*/true);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  CHECK(rows->at(0).victim_run_id == low);
  CHECK(rows->at(0).victim_attempt == victim.attempt());
  CHECK(rows->at(0).preemptor_run_id == critical);
  CHECK(rows->at(0).reason == absl::StrCat("critical run ", critical, " (sweep ", critical_sweep,
                                           ") needs 2 GPUs and 1 CPU slot on worker ", worker));

  // The victim's worker is told on its heartbeat.
  v1::RunAttempt running;
  running.set_run_id(low);
  running.set_attempt(victim.attempt());
  running.set_lease_token(victim.lease_token());
  auto beat = cluster.store->Heartbeat(worker, {running}, cluster.clock.Now(), kTtl);
  REQUIRE(beat.ok());
  REQUIRE(beat->preempt.size() == 1);
  CHECK(beat->preempt[0].run_id() == low);
  CHECK(beat->stop.empty());

  // Held, not handed out, not requeued, not counted twice while the victim checkpoints.
  auto early = cluster.store->LeaseAdmitted(worker, 4, cluster.clock.Now(), kTtl);
  REQUIRE(early.ok());
  CHECK(early->empty());
  cluster.clock.Advance(absl::Seconds(45));
  auto stale = cluster.store->RequeueStaleAdmissions(cluster.clock.Now(), absl::Seconds(30));
  REQUIRE(stale.ok());
  CHECK(*stale == 0);
  auto snapshot = cluster.store->ReadPlacementSnapshot();
  REQUIRE(snapshot.ok());
  REQUIRE(snapshot->workers.size() == 1);
  int held_slots = 0;
  int held_gpus = 0;
  for (const services::HeldResources& held : snapshot->workers[0].held) {
    held_slots += held.cpu_slots;
    held_gpus += static_cast<int>(held.gpu_indices.size());
  }
  CHECK(held_gpus == 2);
  CHECK(held_slots == 1);
  // A second pass preempts nothing more: the victim is already being preempted.
  CHECK(cluster.Pass().preemptors.empty());

  // The trainer checkpointed and exited 7: PREEMPTED, requeued at once.
  v1::CompleteRunRequest done;
  done.set_worker_id(worker);
  done.set_run_id(low);
  done.set_attempt(victim.attempt());
  done.set_lease_token(victim.lease_token());
  done.set_exit_code(7);
  done.set_failure_class(v1::FAILURE_CLASS_PREEMPTED);
  RetryOptions retry;
  auto next =
      cluster.store->CompleteRun(done, [&retry](const v1::Run& run, v1::FailureClass failure_class,
                                                const services::RetryCounts& counts) {
        return DecideAfterFailure(run, failure_class, counts, retry);
      });
  REQUIRE(next.ok());
  CHECK(*next == v1::RUN_STATE_PENDING);
  auto handed = cluster.store->LeaseAdmitted(worker, 4, cluster.clock.Now(), kTtl);
  REQUIRE(handed.ok());
  REQUIRE(handed->size() == 1);
  CHECK(handed->at(0).spec().run_id() == critical);
  CHECK(handed->at(0).spec().execution().gpu_indices_size() == 2);
  auto all = cluster.store->ListPreemptions(/*in_flight_only=*/false);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 1);
  CHECK(all->at(0).state == "done");
  CHECK(all->at(0).victim_ended_at != absl::InfinitePast());
  // The requeued victim waits for the GPUs (it cannot preempt a higher class).
  AdmissionPass after = cluster.Pass();
  CHECK(after.admitted.empty());
  CHECK(after.preemptors.empty());
  CHECK(cluster.StateOf(low) == v1::RUN_STATE_PENDING);
}

}  // namespace
}  // namespace scalelab::scheduler
