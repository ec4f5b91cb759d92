// Evaluation results in the store against a real PostgreSQL: a report read back by run and by
// sweep with filters, a re-sent report stored once (and a changed one replacing the row), the
// latest attempt's results by default, the attempt fence, and a bad batch storing nothing.
#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

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

std::vector<NewRun> Runs(int count) {
  std::vector<NewRun> runs;
  for (int run_idx = 0; run_idx < count; ++run_idx) {
    NewRun run;
    run.index = run_idx;
    run.config.mutable_train()->set_tokens(1000);
    runs.push_back(run);
  }
  return runs;
}

struct Fixture {
  std::unique_ptr<Store> store = OpenStore();
  int64_t worker = 0;
  int64_t sweep_id = 0;
  std::vector<v1::Lease> leases;
  absl::Time now = absl::FromUnixSeconds(1700000000);

  explicit Fixture(int runs = 2) {
    v1::RegisterRequest request;
    request.set_name("w");
    request.set_hostname("test");
    request.set_cpu_slots(4);
    auto id = store->RegisterWorker(request);
    REQUIRE(id.ok());
    worker = *id;
    v1::SweepSpec spec;
    spec.set_name("evals");
    spec.set_project("tests");
    spec.set_kind(v1::RUN_KIND_PRETRAIN);
    spec.set_max_attempts(2);
    auto created = store->CreateSweep(spec, "", "", Runs(runs));
    REQUIRE(created.ok());
    sweep_id = created->sweep.id();
    LeaseAll();
  }

  void LeaseAll() {
    auto snapshot = store->ReadPlacementSnapshot();
    REQUIRE(snapshot.ok());
    std::vector<LeaseGrant> grants;
    for (const StoredPendingRun& run : snapshot->pending) grants.push_back({run.run_id, {}, 1});
    auto granted = store->CommitLeases(worker, grants, now, absl::Seconds(10));
    REQUIRE(granted.ok());
    leases = *std::move(granted);
  }

  v1::ReportEvalsRequest Report(size_t lease_idx) const {
    v1::ReportEvalsRequest request;
    request.set_worker_id(worker);
    request.set_run_id(leases.at(lease_idx).spec().run_id());
    request.set_attempt(leases.at(lease_idx).spec().attempt());
    return request;
  }
};

v1::EvalResult* AddEval(v1::ReportEvalsRequest* request, int64_t step, const std::string& split,
                        const std::string& category, int k, double value) {
  v1::EvalResult* eval = request->add_evals();
  eval->set_step(step);
  eval->set_task_set("addition-3d");
  eval->set_split(split);
  eval->set_category(category);
  eval->set_metric("pass@k");
  eval->set_n(8);
  eval->set_k(k);
  eval->set_value(value);
  eval->set_problems(50);
  return eval;
}

v1::GetEvalsRequest ByRun(int64_t run_id) {
  v1::GetEvalsRequest request;
  request.set_run_id(run_id);
  return request;
}

TEST_CASE("Reported evaluation results read back by run and by sweep, filtered and ordered",
          "[pg][store]") {
  Fixture f;
  v1::ReportEvalsRequest first = f.Report(0);
  AddEval(&first, 100, "test", "", 4, 0.5)->set_low(0.25);
  first.mutable_evals(0)->set_high(0.75);
  AddEval(&first, 100, "test", "", 1, 0.25);
  AddEval(&first, 100, "heldout", "", 1, 0.125);
  AddEval(&first, 50, "test", "carry", 1, 0.0);
  auto stored = f.store->ReportEvals(first);
  REQUIRE(stored.ok());
  CHECK(*stored == 4);
  v1::ReportEvalsRequest second = f.Report(1);
  AddEval(&second, 100, "test", "", 1, 1.0);
  REQUIRE(f.store->ReportEvals(second).ok());

  const int64_t run0 = f.leases[0].spec().run_id();
  auto by_run = f.store->GetEvals(ByRun(run0));
  REQUIRE(by_run.ok());
  REQUIRE(by_run->size() == 4);
  // run, step, task set, split, category, metric, k
  CHECK((*by_run)[0].step() == 50);
  CHECK((*by_run)[1].split() == "heldout");
  CHECK((*by_run)[2].k() == 1);
  const v1::EvalResult& with_interval = (*by_run)[3];
  CHECK(with_interval.k() == 4);
  CHECK(with_interval.value() == 0.5);
  CHECK(with_interval.has_low());
  CHECK(with_interval.low() == 0.25);
  CHECK(with_interval.high() == 0.75);
  CHECK(with_interval.n() == 8);
  CHECK(with_interval.problems() == 50);
  CHECK(with_interval.run_id() == run0);
  CHECK(with_interval.attempt() == 1);
  CHECK(with_interval.created_at().seconds() > 0);
  CHECK_FALSE((*by_run)[2].has_low());

  v1::GetEvalsRequest by_sweep;
  by_sweep.set_sweep_id(f.sweep_id);
  by_sweep.set_split("test");
  auto filtered = f.store->GetEvals(by_sweep);
  REQUIRE(filtered.ok());
  REQUIRE(filtered->size() == 4);
  CHECK(filtered->back().run_id() == f.leases[1].spec().run_id());
  CHECK(filtered->back().value() == 1.0);
  by_sweep.set_task_set("other");
  auto none = f.store->GetEvals(by_sweep);
  REQUIRE(none.ok());
  CHECK(none->empty());

  CHECK(absl::IsNotFound(f.store->GetEvals(ByRun(99999)).status()));
  v1::GetEvalsRequest both = ByRun(run0);
  both.set_sweep_id(f.sweep_id);
  CHECK(absl::IsInvalidArgument(f.store->GetEvals(both).status()));
  CHECK(absl::IsInvalidArgument(f.store->GetEvals(v1::GetEvalsRequest()).status()));
}

TEST_CASE("A re-sent evaluation report is stored once and a changed value replaces the row",
          "[pg][store]") {
  Fixture f(1);
  v1::ReportEvalsRequest report = f.Report(0);
  AddEval(&report, 10, "test", "", 1, 0.5);
  AddEval(&report, 10, "test", "", 2, 0.75);
  REQUIRE(f.store->ReportEvals(report).ok());
  REQUIRE(f.store->ReportEvals(report).ok());
  report.mutable_evals(1)->set_value(0.625);
  report.mutable_evals(1)->set_low(0.5);
  report.mutable_evals(1)->set_high(0.75);
  // The same key twice in one batch: the last one counts.
  *report.add_evals() = report.evals(0);
  report.mutable_evals(2)->set_value(0.375);
  auto stored = f.store->ReportEvals(report);
  REQUIRE(stored.ok());
  CHECK(*stored == 2);
  auto evals = f.store->GetEvals(ByRun(f.leases[0].spec().run_id()));
  REQUIRE(evals.ok());
  REQUIRE(evals->size() == 2);
  CHECK((*evals)[0].value() == 0.375);
  CHECK((*evals)[1].value() == 0.625);
  CHECK((*evals)[1].low() == 0.5);
}

TEST_CASE("Only the latest attempt's result of each key is returned unless all are asked for",
          "[pg][store]") {
  Fixture f(1);
  v1::ReportEvalsRequest first = f.Report(0);
  AddEval(&first, 10, "test", "", 1, 0.25);
  AddEval(&first, 20, "test", "", 1, 0.5);
  REQUIRE(f.store->ReportEvals(first).ok());
  // The lease expires; the run goes back to PENDING and its second attempt is leased.
  auto expired =
      f.store->ExpireLeases(f.now + absl::Seconds(30), absl::Hours(1),
                            [](const v1::Run&, v1::FailureClass) { return v1::RUN_STATE_PENDING; });
  REQUIRE(expired.ok());
  REQUIRE(expired->size() == 1);
  f.now += absl::Seconds(40);
  f.LeaseAll();
  REQUIRE(f.leases.size() == 1);
  REQUIRE(f.leases[0].spec().attempt() == 2);
  // The first attempt's lease is gone: its reports are refused and store nothing.
  first.mutable_evals(0)->set_value(0.875);
  CHECK(absl::IsFailedPrecondition(f.store->ReportEvals(first).status()));

  v1::ReportEvalsRequest second = f.Report(0);
  AddEval(&second, 10, "test", "", 1, 0.375);
  REQUIRE(f.store->ReportEvals(second).ok());

  v1::GetEvalsRequest request = ByRun(f.leases[0].spec().run_id());
  auto latest = f.store->GetEvals(request);
  REQUIRE(latest.ok());
  REQUIRE(latest->size() == 2);
  CHECK((*latest)[0].attempt() == 2);
  CHECK((*latest)[0].value() == 0.375);
  CHECK((*latest)[1].attempt() == 1);  // step 20 only the first attempt reached
  request.set_all_attempts(true);
  auto all = f.store->GetEvals(request);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 3);
  CHECK((*all)[0].attempt() == 1);
  CHECK((*all)[0].value() == 0.25);
  CHECK((*all)[1].attempt() == 2);
}

TEST_CASE("A batch with one bad evaluation result is refused whole, naming it", "[pg][store]") {
  Fixture f(1);
  v1::ReportEvalsRequest good = f.Report(0);
  AddEval(&good, 10, "test", "", 1, 0.5);
  REQUIRE(f.store->ReportEvals(good).ok());

  v1::ReportEvalsRequest bad = f.Report(0);
  AddEval(&bad, 10, "test", "", 1, 0.9);  // would replace the stored 0.5
  AddEval(&bad, 11, "test", "", 1, 0.5);
  AddEval(&bad, 12, "test", "", 9, 0.5);  // k > n
  absl::StatusOr<int> refused = f.store->ReportEvals(bad);
  REQUIRE(absl::IsInvalidArgument(refused.status()));
  CHECK(refused.status().message() == "evals[2].k: expected 1 <= k <= n (n = 8), got 9");
  auto evals = f.store->GetEvals(ByRun(f.leases[0].spec().run_id()));
  REQUIRE(evals.ok());
  REQUIRE(evals->size() == 1);
  CHECK((*evals)[0].value() == 0.5);

  v1::ReportEvalsRequest stranger = f.Report(0);
  stranger.set_worker_id(f.worker + 1);
  AddEval(&stranger, 13, "test", "", 1, 0.5);
  CHECK(absl::IsFailedPrecondition(f.store->ReportEvals(stranger).status()));
  stranger.set_run_id(424242);
  CHECK(absl::IsNotFound(f.store->ReportEvals(stranger).status()));
}

}  // namespace
}  // namespace scalelab::services
