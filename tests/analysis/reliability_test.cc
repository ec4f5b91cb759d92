#include "services/analysis/reliability.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

namespace scalelab::analysis {
namespace {

TEST_CASE("Expected ETTR matches a hand calculation and is clamped to [0, 1]", "[analysis]") {
  // 100 nodes failing once per 10^6 s each, 600 s restart, 60 s checkpoint every 1800 s:
  // (1 - 100e-6 x (600 + 900)) / (1 + 60/1800) = 0.85 / 1.033333.
  CHECK(ExpectedEttr(100, 1e-6, 600, 60, 1800) == Approx(0.8225806).epsilon(1e-6));
  CHECK(ExpectedEttr(1, 0, 0, 0, 1800) == 1.0);
  CHECK(ExpectedEttr(10000, 1e-4, 600, 60, 1800) == 0.0);
  CHECK(std::isnan(ExpectedEttr(1, 1e-6, 0, 60, 0)));
}

TEST_CASE("Young's and Daly's checkpoint intervals match hand calculations", "[analysis]") {
  // w = 60 s, M = 10 000 s: sqrt(2 x 60 x 10 000) = 1095.445.
  CHECK(YoungInterval(60, 10000) == Approx(1095.445).epsilon(1e-6));
  // 1095.4451 x (1 + sqrt(0.003)/3 + 0.003/9) - 60 = 1095.4451 x 1.0185908 - 60 = 1055.8103.
  CHECK(DalyInterval(60, 10000) == Approx(1055.8103).epsilon(1e-6));
  // Checkpoints that take longer than 2 MTBF: checkpoint every MTBF.
  CHECK(DalyInterval(300, 100) == 100);
  CHECK(std::isnan(YoungInterval(60, 0)));
}

std::vector<AttemptRecord> Attempts() {
  std::vector<AttemptRecord> attempts(5);
  // Run 1: fails at 1000 s after checkpoints at 300 and 600 s; restarts at 1100, succeeds.
  attempts[0] = {1, 1, 8, 1, 0, 1000, false, "OUT_OF_MEMORY", {300, 600}};
  attempts[1] = {1, 2, 8, 1, 1100, 3000, true, "", {500}};
  // Run 2: one clean attempt on one device.
  attempts[2] = {2, 1, 1, 1, 0, 500, true, "", {}};
  // Run 3: fails without a checkpoint, restarts 60 s later, fails after one checkpoint.
  attempts[3] = {3, 1, 8, 1, 0, 200, false, "7", {}};
  attempts[4] = {3, 2, 8, 1, 260, 400, false, "", {100}};
  return attempts;
}

TEST_CASE("Attempt records give per-run ETTR, failures by class and size, and restart overhead",
          "[analysis]") {
  std::vector<AttemptRecord> attempts = Attempts();
  std::swap(attempts[0], attempts[4]);  // any input order
  absl::StatusOr<ReliabilityReport> report = AnalyseAttempts(attempts);
  REQUIRE(report.ok());
  REQUIRE(report->runs.size() == 3);
  const RunReliability& run1 = report->runs[0];
  CHECK(run1.run_id == 1);
  CHECK(run1.attempts == 2);
  CHECK(run1.succeeded);
  CHECK(run1.wall_s == 3000);
  CHECK(run1.productive_s == 600 + 1900);
  CHECK(run1.ettr == Approx(2500.0 / 3000));
  CHECK(report->runs[1].ettr == 1.0);
  const RunReliability& run3 = report->runs[2];
  CHECK_FALSE(run3.succeeded);
  CHECK(run3.wall_s == 400);
  CHECK(run3.productive_s == 100);
  CHECK(run3.ettr == Approx(0.25));

  CHECK(report->failures == 3);
  CHECK(report->failures_by_class.at("OUT_OF_MEMORY") == 1);
  CHECK(report->failures_by_class.at("7") == 1);
  CHECK(report->failures_by_class.at("unknown") == 1);

  REQUIRE(report->by_job_size.size() == 2);
  CHECK(report->by_job_size[0].devices == 1);
  CHECK(report->by_job_size[0].device_hours == Approx(500.0 / 3600));
  CHECK(std::isnan(report->by_job_size[0].mttf_device_hours));
  CHECK(report->by_job_size[1].devices == 8);
  CHECK(report->by_job_size[1].attempts == 4);
  CHECK(report->by_job_size[1].failures == 3);
  // 8 x (1000 + 1900 + 200 + 140) s = 7.2 device-hours over 3 failures.
  CHECK(report->by_job_size[1].device_hours == Approx(7.2));
  CHECK(report->by_job_size[1].mttf_device_hours == Approx(2.4));

  // 3740 s on one node each = 1.03889 node-hours.
  CHECK(report->node_hours == Approx(3740.0 / 3600));
  CHECK(report->failures_per_node_hour == Approx(3 / (3740.0 / 3600)));
  CHECK(report->restarts == 2);
  CHECK(report->mean_restart_overhead_s == Approx((100 + 60) / 2.0));
}

TEST_CASE("Attempt records without failures or restarts give NaN rates", "[analysis]") {
  absl::StatusOr<ReliabilityReport> report = AnalyseAttempts({Attempts()[2]});
  REQUIRE(report.ok());
  CHECK(report->failures == 0);
  CHECK(report->failures_per_node_hour == 0);
  CHECK(std::isnan(report->mean_restart_overhead_s));
  CHECK(std::isnan(report->by_job_size[0].mttf_device_hours));
  report = AnalyseAttempts({});
  REQUIRE(report.ok());
  CHECK(std::isnan(report->failures_per_node_hour));
}

TEST_CASE("Bad attempt records are refused naming the record and field", "[analysis]") {
  std::vector<AttemptRecord> attempts = Attempts();
  attempts[1].ended_s = 1000;
  CHECK(AnalyseAttempts(attempts).status().message().find("attempt 1/2: ended_s") !=
        std::string::npos);
  attempts = Attempts();
  attempts[0].checkpoint_offsets_s = {2000};
  CHECK(AnalyseAttempts(attempts).status().message().find("attempt 1/1: checkpoint_offsets_s") !=
        std::string::npos);
  attempts = Attempts();
  attempts[4].attempt = 1;
  CHECK(AnalyseAttempts(attempts).status().message().find("attempt 3/1: appears more than once") !=
        std::string::npos);
}

}  // namespace
}  // namespace scalelab::analysis
