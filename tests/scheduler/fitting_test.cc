// The scheduler's side of fits and reports: grouping runs, fitting a group from run records,
// answering GetFits (allocations, comparisons), and carbon and reliability reports. No store:
// runs and attempts are built in code.
#include "scheduler/fitting.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "catch2/catch.hpp"
#include "google/protobuf/util/time_util.h"
#include "scheduler/reports.h"

namespace scalelab::scheduler {
namespace {

using google::protobuf::util::TimeUtil;

// Hoffmann et al.'s law, with group "slow" needing more data (a larger B).
double Law(double n, double d, double b_scale) {
  return 1.69 + 406.4 / std::pow(n, 0.34) + b_scale * 410.7 / std::pow(d, 0.28);
}

v1::Run MakeRun(int64_t id, double n, double d, double loss, const std::string& mix,
                v1::RunState state = v1::RUN_STATE_SUCCEEDED) {
  v1::Run run;
  run.set_id(id);
  run.set_state(state);
  run.set_val_loss(loss);
  (*run.mutable_overrides())["data.mixture.synthetic"] = mix;
  run.mutable_record()->set_n_params(static_cast<int64_t>(n));
  run.mutable_record()->set_tokens(d);
  run.mutable_record()->set_flops(6 * n * d);
  *run.mutable_updated_at() = TimeUtil::SecondsToTimestamp(1000 + id);
  return run;
}

// Two mixtures x 4 sizes x 4 token counts, noise-free.
std::vector<v1::Run> TwoGroups() {
  std::vector<v1::Run> runs;
  int64_t id = 1;
  for (const auto& [mix, b_scale] :
       std::vector<std::pair<std::string, double>>{{"0", 2.0}, {"0.33", 1.0}}) {
    for (double n : {1e7, 1e8, 1e9, 1e10}) {
      for (double d : {1e9, 1e10, 1e11, 1e12}) {
        runs.push_back(MakeRun(id++, n, d, Law(n, d, b_scale), mix));
      }
    }
  }
  return runs;
}

v1::FitSpec Spec(int bootstrap = 50) {
  v1::FitSpec spec;
  spec.set_law("chinchilla");
  spec.add_group_by("data.mixture.synthetic");
  spec.set_bootstrap(bootstrap);
  spec.set_confidence(0.9);
  spec.set_metric("val_loss");
  return spec;
}

std::map<int64_t, double> Losses(const std::vector<v1::Run>& runs) {
  std::map<int64_t, double> losses;
  for (const v1::Run& run : runs) losses[run.id()] = run.val_loss();
  return losses;
}

TEST_CASE("Runs are grouped by the values of fit.group_by, a group complete when all are terminal",
          "[scheduler][fit]") {
  std::vector<v1::Run> runs = TwoGroups();
  runs.push_back(MakeRun(99, 1e7, 1e9, 3.0, "0.67", v1::RUN_STATE_RUNNING));
  std::vector<FitGroup> groups = GroupRuns(Spec(), runs);
  REQUIRE(groups.size() == 3);
  CHECK(groups[0].key.at("data.mixture.synthetic") == "0");
  CHECK(groups[0].runs.size() == 16);
  CHECK(groups[0].complete);
  CHECK(groups[1].key.at("data.mixture.synthetic") == "0.33");
  CHECK(groups[2].key.at("data.mixture.synthetic") == "0.67");
  CHECK_FALSE(groups[2].complete);
  CHECK(groups[2].newest_update == absl::FromUnixSeconds(1099));

  v1::FitSpec whole = Spec();
  whole.clear_group_by();
  groups = GroupRuns(whole, runs);
  REQUIRE(groups.size() == 1);
  CHECK(groups[0].key.empty());
  CHECK(groups[0].runs.size() == 33);
}

TEST_CASE("Only main-stage pretraining runs are grouped for a fit, not pipeline children",
          "[scheduler][fit][pipeline]") {
  std::vector<v1::Run> runs = TwoGroups();
  for (v1::Run& run : runs) run.set_kind(v1::RUN_KIND_PRETRAIN);
  // An SFT child of run 1, still running, in the first group's overrides: it must neither hold
  // the group back nor add a point.
  v1::Run child = MakeRun(200, 1e7, 1e9, 0.5, "0", v1::RUN_STATE_RUNNING);
  child.set_kind(v1::RUN_KIND_SFT);
  child.set_stage("sft");
  child.set_parent_run_id(1);
  runs.push_back(child);
  // An eval run at the main stage (kind eval, no parent) is not a pretraining point either.
  v1::Run eval = MakeRun(201, 1e7, 1e9, 0.5, "0");
  eval.set_kind(v1::RUN_KIND_EVAL);
  runs.push_back(eval);
  CHECK(IsFittedRun(runs[0]));
  CHECK_FALSE(IsFittedRun(child));
  CHECK_FALSE(IsFittedRun(eval));
  v1::Run stored_before_kinds = MakeRun(300, 1e7, 1e9, 3.0, "0");
  CHECK(IsFittedRun(stored_before_kinds));  // kind UNSPECIFIED: a pretraining run

  std::vector<FitGroup> groups = GroupRuns(Spec(), runs);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].runs.size() == 16);
  CHECK(groups[0].complete);
}

TEST_CASE("A group's chinchilla fit recovers the law from run records, with intervals",
          "[scheduler][fit]") {
  const std::vector<v1::Run> runs = TwoGroups();
  const std::vector<FitGroup> groups = GroupRuns(Spec(), runs);
  FitSettings settings;
  settings.threads = 2;
  services::StoredFit fit = FitOneGroup(7, Spec(), groups[1], Losses(runs), settings);
  INFO(fit.message);
  REQUIRE(fit.message.empty());
  CHECK(fit.sweep_id == 7);
  CHECK(fit.law == "chinchilla");
  CHECK(fit.n_points == 16);
  CHECK(fit.run_ids.size() == 16);
  CHECK(fit.samples.size() == 50 * fit.params.size());
  CHECK(std::isfinite(fit.holdout_rel_error));
  CHECK(fit.holdout_rel_error < 1e-3);

  v1::Fit proto = ToFitProto(fit, {1e21, 1e23});
  CHECK(proto.parameters().at("E") == Approx(1.69).epsilon(1e-3));
  CHECK(proto.parameters().at("A") == Approx(406.4).epsilon(1e-2));
  CHECK(proto.parameters().at("alpha") == Approx(0.34).epsilon(1e-3));
  CHECK(proto.parameters().at("beta") == Approx(0.28).epsilon(1e-3));
  CHECK(proto.bootstrap() == 50);
  CHECK(proto.confidence() == 0.9);
  const v1::Estimate& alpha = proto.estimates().at("alpha");
  CHECK(alpha.lo() <= alpha.value());
  CHECK(alpha.value() <= alpha.hi());
  CHECK(proto.estimates().count("G") == 1);
  REQUIRE(proto.allocations_size() == 2);
  const v1::Allocation& allocation = proto.allocations(1);
  CHECK(allocation.flops() == 1e23);
  // C = 6 N D at the optimum.
  CHECK(6 * allocation.n_params().value() * allocation.tokens().value() ==
        Approx(1e23).epsilon(1e-9));
  CHECK(allocation.n_params().lo() <= allocation.n_params().value());
  CHECK(allocation.loss().value() > 1.69);
}

TEST_CASE("A group without enough usable runs is stored with a message naming why",
          "[scheduler][fit]") {
  std::vector<v1::Run> runs = {MakeRun(1, 1e7, 1e9, 3.0, "0"), MakeRun(2, 1e8, 1e9, 2.8, "0"),
                               MakeRun(3, 1e9, 1e9, 2.6, "0", v1::RUN_STATE_FAILED),
                               MakeRun(4, 1e7, 1e10, 2.9, "0")};
  runs[3].clear_record();
  const std::vector<FitGroup> groups = GroupRuns(Spec(), runs);
  services::StoredFit fit = FitOneGroup(1, Spec(), groups[0], Losses(runs), {});
  CHECK(fit.params.empty());
  CHECK(fit.n_points == 2);
  CHECK(fit.message ==
        "a chinchilla fit needs at least 5 succeeded runs with a run record and a final "
        "val_loss; this group has 2 (run 3 did not succeed; run 4 has no run record)");
  v1::Fit proto = ToFitProto(fit, DefaultBudgets());
  CHECK(proto.parameters().empty());
  CHECK(proto.allocations().empty());
  CHECK(proto.message() == fit.message);
}

TEST_CASE("The compute law fits L(C) from the runs' FLOPs", "[scheduler][fit]") {
  std::vector<v1::Run> runs;
  for (int idx = 0; idx < 8; ++idx) {
    const double c = std::pow(10.0, 17 + idx);
    runs.push_back(MakeRun(idx + 1, 1e8, c / 6e8, 1.8 + 1e3 * std::pow(c, -0.15), "0"));
  }
  v1::FitSpec spec = Spec(20);
  spec.set_law("compute");
  spec.clear_group_by();
  const std::vector<FitGroup> groups = GroupRuns(spec, runs);
  services::StoredFit fit = FitOneGroup(1, spec, groups[0], Losses(runs), {});
  INFO(fit.message);
  REQUIRE(fit.message.empty());
  v1::Fit proto = ToFitProto(fit, {1e20});
  CHECK(proto.parameters().at("E") == Approx(1.8).epsilon(1e-3));
  CHECK(proto.parameters().at("k") == Approx(1e3).epsilon(1e-2));
  CHECK(proto.parameters().at("gamma") == Approx(0.15).epsilon(1e-3));
  CHECK(proto.allocations().empty());
}

TEST_CASE("Groups that differ only in data efficiency compare by the known token multiplier",
          "[scheduler][fit]") {
  const std::vector<v1::Run> runs = TwoGroups();
  const std::vector<FitGroup> groups = GroupRuns(Spec(), runs);
  std::vector<services::StoredFit> fits;
  for (const FitGroup& group : groups) {
    fits.push_back(FitOneGroup(1, Spec(), group, Losses(runs), {}));
  }
  std::map<int64_t, v1::RunRecord> records;
  for (const v1::Run& run : runs) records[run.id()] = run.record();
  const double n = 1e9;
  const double target = 2.2;
  std::vector<v1::EfficiencyComparison> comparisons = CompareGroups(fits, n, target, records);
  REQUIRE(comparisons.size() == 1);
  const v1::EfficiencyComparison& comparison = comparisons[0];
  CHECK(comparison.faster().at("data.mixture.synthetic") == "0.33");
  CHECK(comparison.slower().at("data.mixture.synthetic") == "0");
  // B twice as large: D needed scales by 2^(1/beta).
  CHECK(comparison.multiplier().value() == Approx(std::pow(2.0, 1 / 0.28)).epsilon(1e-2));
  CHECK(comparison.multiplier().lo() <= comparison.multiplier().value());

  // Defaults: the largest N fitted, the first group's loss there with the most tokens.
  comparisons = CompareGroups(fits, 0, 0, records);
  REQUIRE(comparisons.size() == 1);
  CHECK(comparisons[0].n_params() == 1e10);
  CHECK(comparisons[0].target_loss() == Approx(Law(1e10, 1e12, 2.0)).epsilon(1e-3));
}

TEST_CASE("The carbon report prices measured and modelled energy and the loss gained",
          "[scheduler][report]") {
  v1::Run measured = MakeRun(1, 1e6, 1e6, 2.0, "0");
  measured.mutable_config()->mutable_model()->set_vocab_size(256);
  measured.mutable_energy()->set_energy_j(3.6e6);  // 1 kWh
  measured.mutable_energy()->set_source("rapl");
  measured.mutable_energy()->set_device_kind("cpu");
  measured.mutable_energy()->set_devices(1);
  measured.mutable_energy()->set_device_seconds(3600);
  measured.mutable_energy()->set_wall_s(3600);
  v1::Run modelled = MakeRun(2, 1e6, 1e6, 2.5, "0");
  modelled.mutable_energy()->set_wall_s(100);
  modelled.mutable_energy()->set_devices(2);
  modelled.mutable_energy()->set_device_kind("cpu");
  v1::Run never_ran = MakeRun(3, 1e6, 1e6, 2.5, "0", v1::RUN_STATE_CANCELLED);

  analysis::CarbonAssumptions assumptions;
  assumptions.pue = 1.5;
  assumptions.grid_g_per_kwh = 100;
  v1::CarbonReport report = BuildCarbonReport(4, {measured, modelled, never_ran}, assumptions);
  REQUIRE(report.runs_size() == 2);
  const v1::RunCarbon& first = report.runs(0);
  CHECK(first.source() == "rapl");
  CHECK(first.operational_g() == Approx(150));  // 1 kWh x 1.5 x 100 g
  // 1 slot-hour of 10 kg over 5 years.
  CHECK(first.embodied_g() == Approx(10000.0 / (5 * 365 * 24)));
  CHECK(first.loss_improvement() == Approx(std::log(256.0) - 2.0));
  CHECK(first.g_per_loss_unit() == Approx(first.total_g() / (std::log(256.0) - 2.0)));
  const v1::RunCarbon& second = report.runs(1);
  CHECK(second.source() == "model");
  CHECK(second.energy_j() == Approx(2 * 10 * 100));  // 2 slots x 10 W x 100 s
  CHECK(report.total_g() == Approx(first.total_g() + second.total_g()));
  CHECK(report.pue() == 1.5);
  CHECK_THAT(report.assumptions(), Catch::Contains("1 of 2 runs without a measurement"));
}

TEST_CASE("The reliability report measures ETTR from attempts and checkpoints",
          "[scheduler][report]") {
  const absl::Time t0 = absl::FromUnixSeconds(1'000'000);
  services::AttemptRecord failed;
  failed.run_id = 1;
  failed.attempt = 1;
  failed.devices = 1;
  failed.state = v1::RUN_STATE_FAILED;
  failed.failure_class = v1::FAILURE_CLASS_NODE_LOST;
  failed.started_at = t0;
  failed.ended_at = t0 + absl::Seconds(1000);
  failed.checkpoint_times = {t0 + absl::Seconds(300), t0 + absl::Seconds(600)};
  services::AttemptRecord retried = failed;
  retried.attempt = 2;
  retried.state = v1::RUN_STATE_SUCCEEDED;
  retried.failure_class = v1::FAILURE_CLASS_UNSPECIFIED;
  retried.started_at = t0 + absl::Seconds(1100);
  retried.ended_at = t0 + absl::Seconds(2000);
  retried.checkpoint_times.clear();
  services::AttemptRecord running = failed;
  running.run_id = 2;
  running.ended_at.reset();
  services::AttemptRecord cancelled = failed;
  cancelled.run_id = 3;
  cancelled.state = v1::RUN_STATE_CANCELLED;
  cancelled.failure_class = v1::FAILURE_CLASS_CANCELLED;

  ReliabilityAssumptions assumptions;
  assumptions.checkpoint_write_s = 10;
  auto report = BuildReliabilityReport({failed, retried, running, cancelled}, assumptions);
  REQUIRE(report.ok());
  REQUIRE(report->runs_size() == 1);
  const v1::RunReliability& run = report->runs(0);
  CHECK(run.attempts() == 2);
  CHECK(run.wall_s() == Approx(2000));
  CHECK(run.productive_s() == Approx(600 + 900));
  CHECK(run.ettr() == Approx(0.75));
  CHECK(run.expected_ettr() > 0);
  CHECK(run.expected_ettr() <= 1);
  REQUIRE(report->failures_size() == 1);
  CHECK(report->failures(0).failure_class() == v1::FAILURE_CLASS_NODE_LOST);
  CHECK(report->failures(0).count() == 1);
  CHECK(report->restart_overhead_s() == Approx(100));
  // One failure in 1900 node-seconds of attempts.
  CHECK(report->failures_per_node_hour() == Approx(3600.0 / 1900));
  CHECK(report->checkpoint_write_s() == 10);
  CHECK(std::isfinite(report->young_daly_interval_s()));
  REQUIRE(report->mttf_size() == 1);
  CHECK(report->mttf(0).failures() == 1);
}

}  // namespace
}  // namespace scalelab::scheduler
