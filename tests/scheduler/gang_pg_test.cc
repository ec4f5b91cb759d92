// Gangs over a real PostgreSQL: every rank's grant is written with the run's admission, each
// worker leases its own rank of one shared attempt, any rank's failure or silence ends the
// attempt for all, and a gang goes back to the queue as a whole (store_admission.cc,
// store_placement.cc, store_leases.cc).
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
  int64_t Register(const std::string& name, const std::string& address) {
    v1::RegisterRequest request;
    request.set_name(name);
    request.set_hostname(name + ".local");
    request.set_address(address);
    request.set_cpu_slots(1);
    return RegisterWorker(request);
  }

  // One sweep of CPU runs with these ranks each.
  std::vector<int64_t> Submit(const std::vector<int>& ranks_per_run) {
    v1::SweepSpec spec;
    spec.set_name("s");
    spec.set_project("p");
    spec.set_kind(v1::RUN_KIND_PRETRAIN);
    spec.set_max_attempts(3);
    std::vector<services::NewRun> runs;
    for (size_t run_idx = 0; run_idx < ranks_per_run.size(); ++run_idx) {
      services::NewRun run;
      run.index = static_cast<int>(run_idx);
      run.config.mutable_train()->set_tokens(1000);
      run.config.mutable_resources()->set_cpus(1);
      run.config.mutable_resources()->set_ranks(ranks_per_run[run_idx]);
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

  std::vector<int64_t> Admit() { return Pass().admitted; }

  std::vector<v1::Lease> Lease(int64_t worker_id) {
    auto leases = store->LeaseAdmitted(worker_id, 4, clock.Now(), kTtl);
    REQUIRE(leases.ok());
    return *std::move(leases);
  }

  // "rank:worker:state" of each rank row of the attempt, by rank.
  std::vector<std::string> Ranks(int64_t run_id, int attempt) {
    pqxx::connection conn(url);
    pqxx::work txn(conn);
    std::vector<std::string> ranks;
    for (const auto& row : txn.exec_params(
             "SELECT rank, worker_id, state FROM run_ranks WHERE run_id = $1 AND attempt = $2 "
             "ORDER BY rank",
             run_id, attempt)) {
      ranks.push_back(
          absl::StrCat(row[0].as<int>(), ":", row[1].as<int64_t>(), ":", row[2].as<std::string>()));
    }
    return ranks;
  }

  absl::StatusOr<v1::RunState> Complete(const v1::Lease& lease, int64_t worker_id, bool succeeded,
                                        v1::FailureClass failure_class = {}) {
    v1::CompleteRunRequest request;
    request.set_worker_id(worker_id);
    request.set_run_id(lease.spec().run_id());
    request.set_attempt(lease.spec().attempt());
    request.set_lease_token(lease.spec().lease_token());
    request.set_rank(lease.spec().execution().rank());
    request.set_succeeded(succeeded);
    request.set_exit_code(succeeded ? 0 : 6);
    request.set_failure_class(failure_class);
    request.set_message(succeeded ? "" : "peer lost");
    // Infrastructure failures retry, as the scheduler's policy does.
    return store->CompleteRun(
        request, [](const v1::Run&, v1::FailureClass) { return v1::RUN_STATE_PENDING; });
  }

  std::vector<v1::RunAttempt> Heartbeat(int64_t worker_id, const v1::Lease& lease) {
    v1::RunAttempt held;
    held.set_run_id(lease.spec().run_id());
    held.set_attempt(lease.spec().attempt());
    held.set_lease_token(lease.spec().lease_token());
    held.set_rank(lease.spec().execution().rank());
    auto result = store->Heartbeat(worker_id, {held}, clock.Now(), kTtl);
    REQUIRE(result.ok());
    return result->stop;
  }
};

TEST_CASE("A gang is admitted with every rank's grant and each worker leases its own rank",
          "[pg][scheduler][gang]") {
  Cluster cluster;
  const int64_t first = cluster.Register("a", "10.0.0.1");
  const int64_t second = cluster.Register("b", "");
  std::vector<int64_t> runs = cluster.Submit({2, 1});

  // The gang takes both workers' only slot; the 1-rank run behind it finds nothing free, in
  // this pass and the next (both ranks' grants hold their slots).
  CHECK(cluster.Admit() == std::vector<int64_t>{runs[0]});
  CHECK(cluster.Ranks(runs[0], 1) ==
        std::vector<std::string>{absl::StrCat("0:", first, ":ADMITTED"),
                                 absl::StrCat("1:", second, ":ADMITTED")});
  CHECK(cluster.Admit().empty());

  // Rank 1's worker asks first: that starts the attempt for the whole gang.
  std::vector<v1::Lease> rank_one = cluster.Lease(second);
  REQUIRE(rank_one.size() == 1);
  const v1::ExecutionSpec& one = rank_one[0].spec().execution();
  CHECK(one.rank() == 1);
  CHECK(one.world_size() == 2);
  CHECK(one.local_rank() == 0);
  CHECK(one.backend() == "gloo");
  const int64_t token = rank_one[0].spec().lease_token();
  CHECK(one.rendezvous() == absl::StrCat("10.0.0.1:", 29400 + token % 1000));
  v1::Run run = cluster.Get(runs[0]);
  CHECK(run.state() == v1::RUN_STATE_LEASED);
  CHECK(run.attempt() == 1);
  CHECK(run.worker_id() == first);  // the attempt is rank 0's

  std::vector<v1::Lease> rank_zero = cluster.Lease(first);
  REQUIRE(rank_zero.size() == 1);
  CHECK(rank_zero[0].spec().execution().rank() == 0);
  CHECK(rank_zero[0].spec().attempt() == 1);
  CHECK(rank_zero[0].spec().lease_token() == token);
  CHECK(rank_zero[0].spec().execution().rendezvous() == one.rendezvous());
  CHECK(cluster.Lease(first).empty());  // leased once
  CHECK(cluster.Ranks(runs[0], 1) ==
        std::vector<std::string>{absl::StrCat("0:", first, ":LEASED"),
                                 absl::StrCat("1:", second, ":LEASED")});
  CHECK(cluster.Heartbeat(first, rank_zero[0]).empty());
  CHECK(cluster.Heartbeat(second, rank_one[0]).empty());

  // Rank 1 ending well changes nothing for the run; rank 0's end is the run's.
  auto state = cluster.Complete(rank_one[0], second, true);
  REQUIRE(state.ok());
  CHECK(*state == v1::RUN_STATE_LEASED);
  // Its slot is free at once: the 1-rank run is admitted there.
  CHECK(cluster.Admit() == std::vector<int64_t>{runs[1]});
  CHECK(cluster.Get(runs[1]).state() == v1::RUN_STATE_ADMITTED);
  state = cluster.Complete(rank_zero[0], first, true);
  REQUIRE(state.ok());
  CHECK(*state == v1::RUN_STATE_SUCCEEDED);
  CHECK(cluster.Ranks(runs[0], 1) ==
        std::vector<std::string>{absl::StrCat("0:", first, ":SUCCEEDED"),
                                 absl::StrCat("1:", second, ":SUCCEEDED")});
  // A rank's report of another worker's grant is refused.
  CHECK(absl::IsFailedPrecondition(cluster.Complete(rank_one[0], first, true).status()));
}

TEST_CASE("A failed rank fails the gang's attempt, stops its peers, and the retry is a new gang",
          "[pg][scheduler][gang]") {
  Cluster cluster;
  const int64_t first = cluster.Register("a", "10.0.0.1");
  const int64_t second = cluster.Register("b", "10.0.0.2");
  const int64_t gang = cluster.Submit({2})[0];
  REQUIRE(cluster.Admit() == std::vector<int64_t>{gang});
  std::vector<v1::Lease> rank_zero = cluster.Lease(first);
  std::vector<v1::Lease> rank_one = cluster.Lease(second);
  REQUIRE(rank_zero.size() == 1);
  REQUIRE(rank_one.size() == 1);

  auto state = cluster.Complete(rank_one[0], second, false, v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  REQUIRE(state.ok());
  CHECK(*state == v1::RUN_STATE_PENDING);
  v1::Run run = cluster.Get(gang);
  CHECK(absl::StrContains(run.message(), absl::StrCat("rank 1 on worker ", second)));
  CHECK(cluster.Ranks(gang, 1) == std::vector<std::string>{absl::StrCat("0:", first, ":STOPPED"),
                                                           absl::StrCat("1:", second, ":FAILED")});
  // Rank 0's worker is told to stop its trainer at its next heartbeat.
  std::vector<v1::RunAttempt> stop = cluster.Heartbeat(first, rank_zero[0]);
  REQUIRE(stop.size() == 1);
  CHECK(stop[0].rank() == 0);
  // Its peer-lost report comes too late to change anything.
  CHECK(absl::IsFailedPrecondition(
      cluster.Complete(rank_zero[0], first, false, v1::FAILURE_CLASS_SYSTEM_SOFTWARE).status()));

  // The retry is placed as a new gang with a new lease token; reports of the old one are fenced.
  REQUIRE(cluster.Admit() == std::vector<int64_t>{gang});
  std::vector<v1::Lease> retry_zero = cluster.Lease(first);
  std::vector<v1::Lease> retry_one = cluster.Lease(second);
  REQUIRE(retry_zero.size() == 1);
  REQUIRE(retry_one.size() == 1);
  CHECK(retry_zero[0].spec().attempt() == 2);
  CHECK(retry_one[0].spec().lease_token() != rank_one[0].spec().lease_token());
  CHECK(cluster.Heartbeat(second, rank_one[0]).size() == 1);
  CHECK(cluster.Heartbeat(second, retry_one[0]).empty());
}

TEST_CASE("A gang is lost when any one rank's worker stops heartbeating", "[pg][scheduler][gang]") {
  Cluster cluster;
  const int64_t first = cluster.Register("a", "10.0.0.1");
  const int64_t second = cluster.Register("b", "10.0.0.2");
  const int64_t gang = cluster.Submit({2})[0];
  REQUIRE(cluster.Admit() == std::vector<int64_t>{gang});
  std::vector<v1::Lease> rank_zero = cluster.Lease(first);
  REQUIRE(cluster.Lease(second).size() == 1);

  // Rank 0 keeps heartbeating and reporting; rank 1's worker went silent.
  cluster.clock.Advance(absl::Seconds(6));
  CHECK(cluster.Heartbeat(first, rank_zero[0]).empty());
  v1::ReportMetricsRequest report;
  report.set_worker_id(first);
  report.set_run_id(gang);
  report.set_attempt(1);
  report.set_lease_token(rank_zero[0].spec().lease_token());
  REQUIRE(cluster.store->ReportMetrics(report, cluster.clock.Now(), kTtl).ok());
  cluster.clock.Advance(absl::Seconds(5));
  auto expired = cluster.store->ExpireLeases(
      cluster.clock.Now(), absl::Hours(1),
      [](const v1::Run&, v1::FailureClass) { return v1::RUN_STATE_PENDING; });
  REQUIRE(expired.ok());
  REQUIRE(expired->size() == 1);
  CHECK(expired->at(0).run_id == gang);
  v1::Run run = cluster.Get(gang);
  CHECK(run.state() == v1::RUN_STATE_PENDING);
  CHECK(run.message() == absl::StrCat("NODE_LOST: lease of worker ", second, " (rank 1) expired"));
  CHECK(cluster.Ranks(gang, 1) == std::vector<std::string>{absl::StrCat("0:", first, ":STOPPED"),
                                                           absl::StrCat("1:", second, ":FAILED")});
}

TEST_CASE("A gang admitted but never leased goes back to the queue as a whole",
          "[pg][scheduler][gang]") {
  Cluster cluster;
  const int64_t first = cluster.Register("a", "");
  const int64_t second = cluster.Register("b", "");
  const int64_t gang = cluster.Submit({2})[0];
  REQUIRE(cluster.Admit() == std::vector<int64_t>{gang});
  cluster.clock.Advance(absl::Seconds(31));
  auto stale = cluster.store->RequeueStaleAdmissions(cluster.clock.Now(), absl::Seconds(30));
  REQUIRE(stale.ok());
  CHECK(*stale == 1);
  CHECK(cluster.Get(gang).state() == v1::RUN_STATE_PENDING);
  CHECK(cluster.Ranks(gang, 1).empty());
  CHECK(cluster.Lease(first).empty());
  CHECK(cluster.Lease(second).empty());
  // Admitted again, it is leased as usual, the rendezvous on rank 0's hostname.
  REQUIRE(cluster.Admit() == std::vector<int64_t>{gang});
  std::vector<v1::Lease> rank_zero = cluster.Lease(first);
  REQUIRE(rank_zero.size() == 1);
  CHECK(absl::StartsWith(rank_zero[0].spec().execution().rendezvous(), "a.local:"));
}

}  // namespace
}  // namespace scalelab::scheduler
