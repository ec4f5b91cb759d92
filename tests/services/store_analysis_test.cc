// What the store keeps for analysis, against a real PostgreSQL: the run record and energy on
// every listed run, COPY ingest keyed for re-sends, sweep curves in one query with server-side
// downsampling, fits, and attempts with their checkpoint times.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <map>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

#include "services/common/clock.h"
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

v1::SweepSpec Spec(const std::string& name, int max_attempts = 2) {
  v1::SweepSpec spec;
  spec.set_name(name);
  spec.set_project("tests");
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  spec.set_max_attempts(max_attempts);
  return spec;
}

std::vector<NewRun> Runs(int n) {
  std::vector<NewRun> runs(n);
  for (int i = 0; i < n; ++i) {
    runs[i].index = i;
    runs[i].config.mutable_train()->set_tokens(1000);
  }
  return runs;
}

int64_t Register(Store& store, int cpu_slots, int gpus = 0) {
  v1::RegisterRequest request;
  request.set_name("w");
  request.set_hostname("test");
  request.set_cpu_slots(cpu_slots);
  for (int index = 0; index < gpus; ++index) request.add_gpus()->set_index(index);
  auto id = store.RegisterWorker(request);
  REQUIRE(id.ok());
  return *id;
}

// Leases every pending run of the store to `worker`, one CPU slot each (or `gpus` GPUs each,
// numbered from 0 per run, for a worker with as many).
std::vector<v1::Lease> LeaseAll(Store& store, int64_t worker, std::vector<int> gpus = {}) {
  auto snapshot = store.ReadPlacementSnapshot();
  REQUIRE(snapshot.ok());
  std::vector<LeaseGrant> grants;
  for (const StoredPendingRun& run : snapshot->pending) grants.push_back({run.run_id, gpus, 1});
  auto leases = store.CommitLeases(worker, grants, absl::Now(), absl::Hours(1));
  REQUIRE(leases.ok());
  REQUIRE(leases->size() == grants.size());
  return *std::move(leases);
}

v1::ReportMetricsRequest Report(int64_t worker, const v1::Lease& lease) {
  v1::ReportMetricsRequest request;
  request.set_worker_id(worker);
  request.set_run_id(lease.spec().run_id());
  request.set_attempt(lease.spec().attempt());
  return request;
}

void AddPoint(v1::ReportMetricsRequest* request, const std::string& name, int64_t step,
              double value) {
  v1::MetricPoint* point = request->add_points();
  point->set_name(name);
  point->set_step(step);
  point->set_value(value);
  point->set_tokens(step * 100.0);
  point->set_wall_time_s(step * 0.5);
}

int Stored(Store& store, const v1::ReportMetricsRequest& request) {
  auto result = store.ReportMetrics(request, absl::Now(), absl::Hours(1));
  REQUIRE(result.ok());
  return result->stored;
}

v1::CompleteRunRequest Completion(int64_t worker, const v1::Lease& lease, bool succeeded) {
  v1::CompleteRunRequest request;
  request.set_worker_id(worker);
  request.set_run_id(lease.spec().run_id());
  request.set_attempt(lease.spec().attempt());
  request.set_succeeded(succeeded);
  if (!succeeded) {
    request.set_exit_code(1);
    request.set_failure_class(v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  }
  return request;
}

v1::RunState Retry(const v1::Run& run, v1::FailureClass) {
  return run.attempt() < run.max_attempts() ? v1::RUN_STATE_PENDING : v1::RUN_STATE_FAILED;
}

TEST_CASE("A reported run record is stored with the run and shown wherever runs are listed",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  auto created = store->CreateSweep(Spec("s"), "", "", Runs(2));
  REQUIRE(created.ok());
  const int64_t worker = Register(*store, 2);
  std::vector<v1::Lease> leases = LeaseAll(*store, worker);

  v1::ReportMetricsRequest report = Report(worker, leases[0]);
  AddPoint(&report, "val_loss", 5, 3.25);
  v1::RunRecord* record = report.mutable_record();
  record->set_n_params(1234567);
  record->set_n_params_total(2345678);
  record->set_flops_per_token(6.0 * 1234567);
  record->set_tokens(5e5);
  record->set_flops(6.0 * 1234567 * 5e5);
  record->set_family("gpt");
  REQUIRE(Stored(*store, report) == 1);
  // A later report without a record keeps it; one with a record replaces it.
  v1::ReportMetricsRequest plain = Report(worker, leases[0]);
  AddPoint(&plain, "val_loss", 6, 3.0);
  REQUIRE(Stored(*store, plain) == 1);

  auto run = store->GetRun(leases[0].spec().run_id());
  REQUIRE(run.ok());
  REQUIRE(run->has_record());
  CHECK(run->record().n_params() == 1234567);
  CHECK(run->record().n_params_total() == 2345678);
  CHECK(run->record().flops_per_token() == 6.0 * 1234567);
  CHECK(run->record().tokens() == 5e5);
  CHECK(run->record().flops() == 6.0 * 1234567 * 5e5);
  CHECK(run->record().family() == "gpt");
  CHECK(run->step() == 6);

  auto listed = store->ListRuns(created->sweep.id(), v1::RUN_STATE_UNSPECIFIED, 0);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 2);
  CHECK((*listed)[0].record().family() == "gpt");
  CHECK_FALSE((*listed)[1].has_record());  // never reported: no empty record
  auto curves = store->GetSweepCurves(created->sweep.id(), "", 0);
  REQUIRE(curves.ok());
  CHECK((*curves)[0].run().record().n_params() == 1234567);

  record->set_tokens(1e6);
  record->set_flops(6.0 * 1234567 * 1e6);
  REQUIRE(Stored(*store, report) == 0);  // points already stored; the record still moves
  run = store->GetRun(leases[0].spec().run_id());
  REQUIRE(run.ok());
  CHECK(run->record().tokens() == 1e6);
  CHECK(run->record().n_params() == 1234567);
}

TEST_CASE("A run's energy is the sum over its attempts, with mixed sources named so",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  REQUIRE(store->CreateSweep(Spec("s"), "", "", Runs(1)).ok());
  const int64_t worker = Register(*store, 4, 4);

  v1::Lease first = LeaseAll(*store, worker, {0, 1})[0];
  v1::CompleteRunRequest failed = Completion(worker, first, false);
  failed.mutable_energy()->set_energy_j(1000);
  failed.mutable_energy()->set_source("nvml");
  failed.mutable_energy()->set_device_seconds(20);
  failed.mutable_energy()->set_device_kind("gpu");
  failed.mutable_energy()->set_devices(2);
  REQUIRE(store->CompleteRun(failed, Retry).value() == v1::RUN_STATE_PENDING);

  auto run = store->GetRun(first.spec().run_id());
  REQUIRE(run.ok());
  CHECK(run->energy().energy_j() == 1000);
  CHECK(run->energy().source() == "nvml");
  CHECK(run->energy().devices() == 2);
  CHECK(run->energy().wall_s() >= 0);

  v1::Lease second = LeaseAll(*store, worker, {0, 1, 2})[0];
  REQUIRE(second.spec().attempt() == 2);
  // Before its report, the running attempt counts its granted GPUs and no energy.
  run = store->GetRun(first.spec().run_id());
  REQUIRE(run.ok());
  CHECK(run->energy().devices() == 3);
  CHECK(run->energy().energy_j() == 1000);

  v1::CompleteRunRequest done = Completion(worker, second, true);
  done.mutable_energy()->set_energy_j(500.5);
  done.mutable_energy()->set_source("model");
  done.mutable_energy()->set_device_seconds(30);
  done.mutable_energy()->set_device_kind("gpu");
  done.mutable_energy()->set_devices(3);
  REQUIRE(store->CompleteRun(done, Retry).value() == v1::RUN_STATE_SUCCEEDED);
  auto runs = store->ListRuns(0, v1::RUN_STATE_SUCCEEDED, 0);
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 1);
  const v1::EnergyReport& energy = (*runs)[0].energy();
  CHECK(energy.energy_j() == 1500.5);
  CHECK(energy.device_seconds() == 50);
  CHECK(energy.source() == "mixed");
  CHECK(energy.device_kind() == "gpu");
  CHECK(energy.devices() == 3);
  CHECK(energy.wall_s() >= 0);
}

TEST_CASE("Batches below and above the COPY threshold are stored once, with exact values",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  REQUIRE(store->CreateSweep(Spec("s"), "", "", Runs(1)).ok());
  const int64_t worker = Register(*store, 1);
  const v1::Lease lease = LeaseAll(*store, worker)[0];
  // Names that need quoting in an array literal or escaping in COPY text.
  const std::vector<std::string> names = {
      "val_loss", "a \"quoted\" {name}, with\ttab", "back\\slash\nline", "ünïcødé", "NULL", ""};
  for (int batch_size : {5, 200}) {
    CAPTURE(batch_size);
    const int64_t first_step = batch_size * 1000;
    v1::ReportMetricsRequest report = Report(worker, lease);
    for (int i = 0; i < batch_size; ++i) {
      AddPoint(&report, names[i % names.size()], first_step + i / names.size(), 0.1 * i + 1e-17);
    }
    report.mutable_points(1)->set_value(std::numeric_limits<double>::quiet_NaN());
    report.mutable_points(2)->set_value(-std::numeric_limits<double>::infinity());
    report.mutable_points(3)->set_value(0.1 + 0.2);
    CHECK(Stored(*store, report) == batch_size);
    CHECK(Stored(*store, report) == 0);
    // Half old, half new.
    v1::ReportMetricsRequest overlapping = Report(worker, lease);
    for (int i = batch_size / 2; i < batch_size; ++i) *overlapping.add_points() = report.points(i);
    for (int i = 0; i < batch_size / 2; ++i) {
      AddPoint(&overlapping, "extra", first_step + i, i);
    }
    CHECK(Stored(*store, overlapping) == batch_size / 2);

    auto metrics = store->GetRunMetrics(lease.spec().run_id(), {});
    REQUIRE(metrics.ok());
    std::map<std::pair<std::string, int64_t>, v1::MetricPoint> stored;
    for (const v1::MetricSeries& series : metrics->series()) {
      for (const v1::MetricPoint& point : series.points()) {
        stored[{series.name(), point.step()}] = point;
      }
    }
    for (const v1::MetricPoint& sent : report.points()) {
      CAPTURE(sent.name(), sent.step());
      auto found = stored.find({sent.name(), sent.step()});
      REQUIRE(found != stored.end());
      const v1::MetricPoint& point = found->second;
      if (std::isnan(sent.value())) {
        CHECK(std::isnan(point.value()));
      } else {
        CHECK(point.value() == sent.value());  // bit-exact, not approximately
      }
      CHECK(point.tokens() == sent.tokens());
      CHECK(point.wall_time_s() == sent.wall_time_s());
    }
  }
  auto run = store->GetRun(lease.spec().run_id());
  REQUIRE(run.ok());
  CHECK(run->step() == 200 * 1000 + 99);  // the last "extra" point
  CHECK(run->val_loss() == Approx(0.1 * 198 + 1e-17));
}

TEST_CASE("A fresh batch meeting a point stored behind the store's back is still stored",
          "[pg][store][analysis]") {
  const std::string url = scalelab::testing::FreshDatabaseUrl();
  StoreOptions options;
  options.url = url;
  auto opened = Store::Open(options);
  REQUIRE(opened.ok());
  Store& store = **opened;
  REQUIRE(store.CreateSweep(Spec("s"), "", "", Runs(1)).ok());
  const int64_t worker = Register(store, 1);
  const v1::Lease lease = LeaseAll(store, worker)[0];
  {
    pqxx::connection conn(url);
    pqxx::work txn(conn);
    txn.exec_params(
        "INSERT INTO metric_points (run_id, attempt, step, name, value, tokens, wall_time_s) "
        "VALUES ($1, $2, 50, 'metric_7', 0, 0, 0)",
        lease.spec().run_id(), lease.spec().attempt());
    txn.commit();
  }
  // Steps beyond what the attempt reported, so the store tries COPY, which meets that point.
  v1::ReportMetricsRequest report = Report(worker, lease);
  for (int i = 0; i < 100; ++i) AddPoint(&report, "metric_" + std::to_string(i), 50, i);
  CHECK(Stored(store, report) == 99);
  // A batch that repeats a (name, step) within itself stores it once.
  v1::ReportMetricsRequest repeated = Report(worker, lease);
  for (int i = 0; i < 100; ++i) AddPoint(&repeated, "metric_" + std::to_string(i % 90), 60, i);
  CHECK(Stored(store, repeated) == 90);
  auto metrics = store.GetRunMetrics(lease.spec().run_id(), {"metric_3"});
  REQUIRE(metrics.ok());
  REQUIRE(metrics->series_size() == 1);
  REQUIRE(metrics->series(0).points_size() == 2);
  CHECK(metrics->series(0).points(1).value() == 3);  // the first of the two at step 60
}

// A sweep of `runs` runs, each with `points` val_loss points at steps 0, 10, 20, ... (value
// run id + point number / 1000) and one train_loss point per step.
struct CurvedSweep {
  int64_t sweep_id = 0;
  int64_t worker = 0;
  std::vector<v1::Lease> leases;
};

CurvedSweep SweepWithCurves(Store& store, int runs, int points) {
  auto created = store.CreateSweep(Spec("curves"), "", "", Runs(runs));
  REQUIRE(created.ok());
  CurvedSweep sweep{created->sweep.id(), Register(store, runs), {}};
  sweep.leases = LeaseAll(store, sweep.worker);
  for (int r = 0; r < runs; ++r) {
    v1::ReportMetricsRequest report = Report(sweep.worker, sweep.leases[r]);
    for (int p = 0; p < points; ++p) {
      AddPoint(&report, "val_loss", p * 10, sweep.leases[r].spec().run_id() + p / 1000.0);
      AddPoint(&report, "train_loss", p * 10, 9.0);
    }
    REQUIRE(Stored(store, report) == 2 * points);
  }
  return sweep;
}

std::vector<int64_t> Steps(const v1::RunCurve& curve) {
  std::vector<int64_t> steps;
  for (const v1::MetricPoint& point : curve.points()) steps.push_back(point.step());
  return steps;
}

TEST_CASE("Downsampled curves keep exactly max_points, first and last, evenly spaced",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  CurvedSweep sweep = SweepWithCurves(*store, 2, 101);

  auto all = store->GetSweepCurves(sweep.sweep_id, "val_loss", 0);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].points_size() == 101);
  CHECK((*all)[1].points(7).value() == Approx((*all)[1].run().id() + 0.007));
  CHECK((*all)[1].points(7).name() == "val_loss");

  auto ten = store->GetSweepCurves(sweep.sweep_id, "", 10);
  REQUIRE(ten.ok());
  for (const v1::RunCurve& curve : *ten) {
    std::vector<int64_t> steps = Steps(curve);
    REQUIRE(steps.size() == 10);
    CHECK(steps.front() == 0);
    CHECK(steps.back() == 1000);
    for (size_t i = 1; i < steps.size(); ++i) {
      // 100 intervals over 9 gaps: every gap is 11 or 12 points wide.
      CHECK((steps[i] - steps[i - 1] == 110 || steps[i] - steps[i - 1] == 120));
    }
  }
  auto two = store->GetSweepCurves(sweep.sweep_id, "val_loss", 2);
  REQUIRE(two.ok());
  CHECK(Steps((*two)[0]) == std::vector<int64_t>{0, 1000});
  auto last = store->GetSweepCurves(sweep.sweep_id, "val_loss", 1);
  REQUIRE(last.ok());
  CHECK(Steps((*last)[1]) == std::vector<int64_t>{1000});
  auto more = store->GetSweepCurves(sweep.sweep_id, "val_loss", 500);
  REQUIRE(more.ok());
  CHECK((*more)[0].points_size() == 101);

  CHECK(absl::IsInvalidArgument(store->GetSweepCurves(sweep.sweep_id, "", -1).status()));
  CHECK(absl::IsNotFound(store->GetSweepCurves(sweep.sweep_id + 1, "", 0).status()));
}

TEST_CASE("Curves of many runs come in run order, each of its run's latest attempt",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  CurvedSweep sweep = SweepWithCurves(*store, 120, 5);
  // Run 3's first attempt fails after reporting; its second attempt has reported one point.
  REQUIRE(store->CompleteRun(Completion(sweep.worker, sweep.leases[3], false), Retry).ok());
  v1::Lease retried = LeaseAll(*store, sweep.worker)[0];
  REQUIRE(retried.spec().attempt() == 2);
  v1::ReportMetricsRequest report = Report(sweep.worker, retried);
  AddPoint(&report, "val_loss", 10, 42.0);
  REQUIRE(Stored(*store, report) == 1);

  auto curves = store->GetSweepCurves(sweep.sweep_id, "val_loss", 3);
  REQUIRE(curves.ok());
  REQUIRE(curves->size() == 120);
  for (int index = 0; index < 120; ++index) {
    const v1::RunCurve& curve = (*curves)[index];
    CHECK(curve.run().index() == index);
    if (index == 3) {
      CHECK(curve.run().attempt() == 2);
      REQUIRE(curve.points_size() == 1);
      CHECK(curve.points(0).value() == 42.0);
      continue;
    }
    REQUIRE(curve.points_size() == 3);
    CHECK(Steps(curve) == std::vector<int64_t>{0, 20, 40});
    CHECK(curve.points(2).value() == Approx(curve.run().id() + 0.004));
  }
}

StoredFit Fit(int64_t sweep_id, const std::string& law) {
  StoredFit fit;
  fit.sweep_id = sweep_id;
  fit.law = law;
  fit.group = {{"data.mixture.rephrased", "0.33"}, {"model.family", "gpt \"x\""}};
  fit.param_names = {"E", "A", "alpha", "B", "beta"};
  fit.params = {1.69, 406.4, 0.34, 410.7, 0.28};
  fit.samples = {1.7, 400, 0.33, 411, 0.29, 1.68, 410, 0.35, 409, 0.27};
  fit.confidence = 0.95;
  fit.objective = 0.1 + 0.2;
  fit.n_points = 12;
  fit.run_ids = {3, 1, 2};
  fit.holdout_rel_error = 0.031;
  fit.message = "";
  return fit;
}

TEST_CASE("Fits round-trip, a refit of the same group replaces the row, bad fits are refused",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  auto created = store->CreateSweep(Spec("s"), "", "", Runs(1));
  REQUIRE(created.ok());
  const int64_t sweep_id = created->sweep.id();

  StoredFit chinchilla = Fit(sweep_id, "chinchilla");
  auto id = store->SaveFit(chinchilla);
  REQUIRE(id.ok());
  StoredFit compute = Fit(sweep_id, "compute");
  compute.group.clear();
  compute.param_names = {"E", "k", "gamma"};
  compute.params = {1.5, 1e3, std::numeric_limits<double>::infinity()};
  compute.samples.clear();
  compute.holdout_rel_error = std::numeric_limits<double>::quiet_NaN();
  compute.message = "too few sizes for a held-out check";
  auto compute_id = store->SaveFit(compute);
  REQUIRE(compute_id.ok());
  CHECK(*compute_id != *id);

  auto fits = store->ListFits(sweep_id);
  REQUIRE(fits.ok());
  REQUIRE(fits->size() == 2);
  const StoredFit& first = (*fits)[0];
  CHECK(first.id == *id);
  CHECK(first.law == "chinchilla");
  CHECK(first.group == chinchilla.group);
  CHECK(first.param_names == chinchilla.param_names);
  CHECK(first.params == chinchilla.params);
  CHECK(first.samples == chinchilla.samples);
  CHECK(first.confidence == 0.95);
  CHECK(first.objective == 0.1 + 0.2);
  CHECK(first.n_points == 12);
  CHECK(first.run_ids == std::vector<int64_t>{3, 1, 2});
  CHECK(first.holdout_rel_error == 0.031);
  CHECK(absl::Now() - first.created_at < absl::Minutes(1));
  const StoredFit& second = (*fits)[1];
  CHECK(second.group.empty());
  CHECK(second.samples.empty());
  CHECK(std::isinf(second.params[2]));
  CHECK(std::isnan(second.holdout_rel_error));
  CHECK(second.message == "too few sizes for a held-out check");

  const absl::Time first_created = first.created_at;  // `fits` is about to be replaced
  chinchilla.params[0] = 1.7;
  chinchilla.samples.clear();
  auto again = store->SaveFit(chinchilla);
  REQUIRE(again.ok());
  CHECK(*again == *id);
  fits = store->ListFits(sweep_id);
  REQUIRE(fits.ok());
  REQUIRE(fits->size() == 2);
  CHECK((*fits)[0].params[0] == 1.7);
  CHECK((*fits)[0].samples.empty());
  CHECK((*fits)[0].created_at >= first_created);

  StoredFit bad = Fit(sweep_id, "chinchilla");
  bad.params.pop_back();
  CHECK(absl::IsInvalidArgument(store->SaveFit(bad).status()));
  bad = Fit(sweep_id, "chinchilla");
  bad.samples.pop_back();
  CHECK(absl::IsInvalidArgument(store->SaveFit(bad).status()));
  bad = Fit(sweep_id, "");
  CHECK(absl::IsInvalidArgument(store->SaveFit(bad).status()));
  CHECK(absl::IsNotFound(store->SaveFit(Fit(sweep_id + 1, "chinchilla")).status()));
  CHECK(absl::IsNotFound(store->ListFits(sweep_id + 1).status()));
}

TEST_CASE("Sweeps need the fitter's look when a run ends after their newest fit",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  const int64_t worker = Register(*store, 8);
  auto fitted = store->CreateSweep(Spec("fitted", 1), "", "", Runs(2));
  REQUIRE(fitted.ok());
  v1::SweepSpec no_fit_spec = Spec("no-fit", 1);
  no_fit_spec.mutable_fit()->set_law("none");
  auto no_fit = store->CreateSweep(no_fit_spec, "", "", Runs(1));
  REQUIRE(no_fit.ok());
  std::vector<v1::Lease> leases = LeaseAll(*store, worker);
  REQUIRE(leases.size() == 3);
  auto running = store->CreateSweep(Spec("running", 1), "", "", Runs(1));  // stays pending
  REQUIRE(running.ok());
  auto stale = [&] {
    auto ids = store->SweepsWithStaleFits(0);
    REQUIRE(ids.ok());
    return *ids;
  };
  CHECK(stale().empty());

  // One run of `fitted` ends and a group fit is saved while the other still runs.
  REQUIRE(store->CompleteRun(Completion(worker, leases[0], true), Retry).ok());
  REQUIRE(store->SaveFit(Fit(fitted->sweep.id(), "chinchilla")).ok());
  CHECK(stale().empty());
  absl::SleepFor(absl::Milliseconds(5));  // the next change is strictly later than the fit
  REQUIRE(store->CompleteRun(Completion(worker, leases[1], false), Retry).ok());
  REQUIRE(store->CompleteRun(Completion(worker, leases[2], true), Retry).ok());
  // Ended after its fit: stale. `no-fit` asked for no fit; `running` has not ended.
  CHECK(stale() == std::vector<int64_t>{fitted->sweep.id()});

  REQUIRE(store->SaveFit(Fit(fitted->sweep.id(), "chinchilla")).ok());
  CHECK(stale().empty());
  // A cancelled sweep's runs end too; the fitter decides what that means for its groups.
  auto created = store->CreateSweep(Spec("unfitted", 1), "", "", Runs(1));
  REQUIRE(created.ok());
  CHECK(store->CancelSweep(created->sweep.id(), "").ok());
  CHECK(stale() == std::vector<int64_t>{created->sweep.id()});
  auto limited = store->SweepsWithStaleFits(1);
  REQUIRE(limited.ok());
  CHECK(limited->size() == 1);
}

TEST_CASE("Attempts list when they ran, on how much, how they ended and their checkpoints",
          "[pg][store][analysis]") {
  auto store = OpenStore();
  auto created = store->CreateSweep(Spec("s"), "", "", Runs(2));
  REQUIRE(created.ok());
  auto other = store->CreateSweep(Spec("other"), "", "", Runs(1));
  REQUIRE(other.ok());
  const int64_t worker = Register(*store, 4, 2);
  std::vector<v1::Lease> leases = LeaseAll(*store, worker, {});
  REQUIRE(leases.size() == 3);

  v1::ReportArtifactsRequest checkpoints;
  checkpoints.set_worker_id(worker);
  checkpoints.set_run_id(leases[0].spec().run_id());
  checkpoints.set_attempt(1);
  for (int step : {200, 100}) {
    v1::Artifact* artifact = checkpoints.add_artifacts();
    artifact->set_kind("checkpoint");
    artifact->set_step(step);
    artifact->set_location("/ckpt/" + std::to_string(step));
  }
  v1::Artifact* final_weights = checkpoints.add_artifacts();
  final_weights->set_kind("final");
  final_weights->set_step(300);
  final_weights->set_location("/final");
  REQUIRE(store->ReportArtifacts(checkpoints).ok());
  v1::CompleteRunRequest failed = Completion(worker, leases[0], false);
  failed.mutable_energy()->set_energy_j(77);
  failed.mutable_energy()->set_source("rapl");
  failed.mutable_energy()->set_devices(1);
  failed.mutable_energy()->set_device_kind("cpu");
  failed.mutable_energy()->set_device_seconds(3);
  REQUIRE(store->CompleteRun(failed, Retry).ok());
  auto retried = store->CommitLeases(worker, {{leases[0].spec().run_id(), {0, 1}, 1}}, absl::Now(),
                                     absl::Hours(1));
  REQUIRE(retried.ok());
  REQUIRE(retried->size() == 1);

  auto attempts = store->ListAttempts(created->sweep.id());
  REQUIRE(attempts.ok());
  REQUIRE(attempts->size() == 3);
  const AttemptRecord& first = (*attempts)[0];
  CHECK(first.run_id == leases[0].spec().run_id());
  CHECK(first.sweep_id == created->sweep.id());
  CHECK(first.attempt == 1);
  CHECK(first.worker_id == worker);
  CHECK(first.state == v1::RUN_STATE_FAILED);
  CHECK(first.failure_class == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  REQUIRE(first.ended_at.has_value());
  CHECK(*first.ended_at >= first.started_at);
  CHECK(first.energy.wall_s() >= 0);
  CHECK(first.energy.energy_j() == 77);
  CHECK(first.energy.source() == "rapl");
  CHECK(first.devices == 1);
  REQUIRE(first.checkpoint_times.size() == 2);
  CHECK(first.checkpoint_times[0] <= first.checkpoint_times[1]);
  CHECK(absl::Now() - first.checkpoint_times[0] < absl::Minutes(1));

  const AttemptRecord& second = (*attempts)[1];
  CHECK(second.attempt == 2);
  CHECK(second.state == v1::RUN_STATE_LEASED);
  CHECK_FALSE(second.ended_at.has_value());
  CHECK(second.devices == 2);  // its GPUs, from placement
  CHECK(second.gpus == 2);
  CHECK(second.cpu_slots == 1);
  CHECK(second.checkpoint_times.empty());
  CHECK((*attempts)[2].run_id == leases[1].spec().run_id());

  auto everything = store->ListAttempts(0);
  REQUIRE(everything.ok());
  CHECK(everything->size() == 4);
  CHECK(absl::IsNotFound(store->ListAttempts(other->sweep.id() + 1).status()));
}

}  // namespace
}  // namespace scalelab::services
