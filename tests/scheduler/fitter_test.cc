// The fitter over a real PostgreSQL: runs reported through the store's worker path (records,
// val_loss, completion) are fitted per group once the group is finished, stored, not refitted
// while nothing changes, and refitted after a restart only when stale.
#include "scheduler/fitter.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/fitting.h"
#include "scheduler/leasing.h"
#include "scheduler/store_placement_state.h"
#include "services/common/clock.h"
#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

constexpr absl::Duration kTtl = absl::Seconds(10);

double Law(double n, double d, double b_scale) {
  return 1.69 + 406.4 / std::pow(n, 0.34) + b_scale * 410.7 / std::pow(d, 0.28);
}

struct Point {
  double n;
  double d;
  std::string mix;
};

struct Cluster {
  std::unique_ptr<services::Store> store;
  std::unique_ptr<StorePlacementState> state;
  services::FakeClock clock;
  int64_t worker = 0;

  Cluster() {
    services::StoreOptions options;
    options.url = scalelab::testing::FreshDatabaseUrl();
    auto opened = services::Store::Open(options);
    REQUIRE(opened.ok());
    store = *std::move(opened);
    state = std::make_unique<StorePlacementState>(store.get());
    v1::RegisterRequest request;
    request.set_name("w");
    request.set_hostname("test");
    request.set_cpu_slots(64);
    auto id = store->RegisterWorker(request);
    REQUIRE(id.ok());
    worker = *id;
  }

  int64_t Submit(const std::vector<Point>& points) {
    v1::SweepSpec spec;
    spec.set_name("fits");
    spec.set_project("tests");
    spec.set_kind(v1::RUN_KIND_PRETRAIN);
    spec.set_max_attempts(1);
    spec.mutable_fit()->set_law("chinchilla");
    spec.mutable_fit()->add_group_by("data.mixture.synthetic");
    spec.mutable_fit()->set_bootstrap(20);
    spec.mutable_fit()->set_confidence(0.95);
    spec.mutable_fit()->set_metric("val_loss");
    std::vector<services::NewRun> runs;
    for (size_t run_idx = 0; run_idx < points.size(); ++run_idx) {
      services::NewRun run;
      run.index = static_cast<int>(run_idx);
      run.config.mutable_train()->set_tokens(points[run_idx].d);
      run.overrides["data.mixture.synthetic"] = points[run_idx].mix;
      runs.push_back(run);
    }
    auto created = store->CreateSweep(spec, "", "", runs);
    REQUIRE(created.ok());
    return created->sweep.id();
  }

  // Leases every pending run and finishes each as the worker would: a record, a final
  // val_loss, then completion. `finish` says which (by index) to complete.
  void RunAll(const std::vector<Point>& points, const std::vector<bool>& finish) {
    auto leases = GrantLeases(*state, *store, worker, 64, clock.Now(), kTtl, {});
    REQUIRE(leases.ok());
    for (const v1::Lease& lease : *leases) {
      const int64_t run_id = lease.spec().run_id();
      auto run = store->GetRun(run_id);
      REQUIRE(run.ok());
      const size_t idx = static_cast<size_t>(run->index());
      if (!finish[idx]) continue;
      const Point& point = points[idx];
      const double b_scale = point.mix == "0" ? 2.0 : 1.0;
      v1::ReportMetricsRequest report;
      report.set_worker_id(worker);
      report.set_run_id(run_id);
      report.set_attempt(lease.spec().attempt());
      v1::MetricPoint* loss = report.add_points();
      loss->set_step(10);
      loss->set_tokens(point.d);
      loss->set_name("val_loss");
      loss->set_value(Law(point.n, point.d, b_scale));
      v1::RunRecord* record = report.mutable_record();
      record->set_n_params(static_cast<int64_t>(point.n));
      record->set_n_params_total(static_cast<int64_t>(point.n) + 1000);
      record->set_flops_per_token(6 * point.n);
      record->set_tokens(point.d);
      record->set_flops(6 * point.n * point.d);
      record->set_family("transformer");
      REQUIRE(store->ReportMetrics(report, clock.Now(), kTtl).ok());
      v1::CompleteRunRequest done;
      done.set_worker_id(worker);
      done.set_run_id(run_id);
      done.set_attempt(lease.spec().attempt());
      done.set_succeeded(true);
      REQUIRE(store
                  ->CompleteRun(
                      done, [](const v1::Run&, v1::FailureClass) { return v1::RUN_STATE_FAILED; })
                  .ok());
    }
  }
};

std::vector<Point> Grid(const std::string& mix) {
  std::vector<Point> points;
  for (double n : {1e7, 1e8, 1e9}) {
    for (double d : {1e9, 1e10, 1e11}) points.push_back({n, d, mix});
  }
  return points;
}

TEST_CASE("A finished sweep is fitted per group once, from the records the runs reported",
          "[scheduler][fit][pg]") {
  Cluster cluster;
  std::vector<Point> points = Grid("0");
  for (const Point& point : Grid("0.33")) points.push_back(point);
  const int64_t sweep = cluster.Submit(points);
  FitterOptions options;
  options.settings.threads = 2;
  Fitter fitter(cluster.store.get(), options);

  // Nothing is finished: nothing to fit.
  auto pass = fitter.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->groups_fitted == 0);

  cluster.RunAll(points, std::vector<bool>(points.size(), true));
  pass = fitter.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->sweeps_examined == 1);
  CHECK(pass->groups_fitted == 2);

  auto fits = cluster.store->ListFits(sweep);
  REQUIRE(fits.ok());
  REQUIRE(fits->size() == 2);
  for (const services::StoredFit& fit : *fits) {
    INFO(fit.message);
    CHECK(fit.message.empty());
    CHECK(fit.n_points == 9);
    CHECK(fit.run_ids.size() == 9);
    CHECK(fit.samples.size() == 20 * fit.params.size());
  }
  v1::Fit proto = ToFitProto((*fits)[1], {1e21});
  CHECK(proto.group().at("data.mixture.synthetic") == "0.33");
  CHECK(proto.parameters().at("alpha") == Approx(0.34).epsilon(1e-2));
  CHECK(proto.parameters().at("beta") == Approx(0.28).epsilon(1e-2));
  REQUIRE(proto.allocations_size() == 1);

  // Nothing changed: the next pass, and a restarted scheduler's fitter, fit nothing.
  pass = fitter.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->groups_fitted == 0);
  Fitter restarted(cluster.store.get(), options);
  pass = restarted.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->groups_fitted == 0);
}

TEST_CASE("A group whose runs are not all finished is not fitted, its finished sibling is",
          "[scheduler][fit][pg]") {
  Cluster cluster;
  std::vector<Point> points = Grid("0");
  for (const Point& point : Grid("0.33")) points.push_back(point);
  const int64_t sweep = cluster.Submit(points);
  std::vector<bool> finish(points.size(), true);
  finish.back() = false;  // one run of group "0.33" keeps running
  cluster.RunAll(points, finish);
  Fitter fitter(cluster.store.get(), {});
  auto pass = fitter.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->sweeps_examined == 1);
  CHECK(pass->groups_fitted == 1);
  // The sweep stays of interest (a run may still end) but nothing changed: nothing is refitted.
  pass = fitter.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->groups_fitted == 0);
  auto fits = cluster.store->ListFits(sweep);
  REQUIRE(fits.ok());
  REQUIRE(fits->size() == 1);
  CHECK(fits->at(0).group.at("data.mixture.synthetic") == "0");
}

}  // namespace
}  // namespace scalelab::scheduler
