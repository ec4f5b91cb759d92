#include "services/cli/report_format.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/cli/fit_format.h"
#include "services/cli/format.h"
#include "services/common/run_state.h"

namespace scalelab::cli {
namespace {

constexpr double kJoulesPerWh = 3600.0;

std::string Wh(double joules) { return Significant(joules / kJoulesPerWh, 4); }

// "3.2 h", "45 min", "12 s": the unit a person reads a duration in.
std::string Duration(double seconds) {
  if (!std::isfinite(seconds)) return "-";
  if (seconds >= 3 * 3600) return absl::StrCat(Significant(seconds / 3600, 3), " h");
  if (seconds >= 3 * 60) return absl::StrCat(Significant(seconds / 60, 3), " min");
  return absl::StrCat(Significant(seconds, 3), " s");
}

}  // namespace

void PrintCarbonReport(std::ostream& out, const v1::CarbonReport& report) {
  out << "sweep " << report.sweep_id() << ": carbon footprint (grams CO2e)\n";
  std::vector<std::vector<std::string>> rows;
  for (const v1::RunCarbon& run : report.runs()) {
    rows.push_back({absl::StrCat(run.run_id()), Wh(run.energy_j()),
                    run.source().empty() ? "-" : run.source(), Significant(run.operational_g(), 4),
                    Significant(run.embodied_g(), 4), Significant(run.total_g(), 4),
                    Significant(run.final_loss(), 4), Significant(run.loss_improvement(), 4),
                    Significant(run.g_per_loss_unit(), 4), GroupText(run.overrides())});
  }
  rows.push_back({"TOTAL", Wh(report.energy_j()), "", Significant(report.operational_g(), 4),
                  Significant(report.embodied_g(), 4), Significant(report.total_g(), 4), "", "", "",
                  ""});
  PrintTable(out,
             {"RUN", "ENERGY_WH", "SOURCE", "OPERATIONAL_G", "EMBODIED_G", "TOTAL_G", "FINAL_LOSS",
              "LOSS_IMPROVEMENT", "G_PER_LOSS_UNIT", "OVERRIDES"},
             rows);
  out << "PUE " << Significant(report.pue(), 3) << ", grid "
      << Significant(report.grid_g_per_kwh(), 4) << " gCO2e/kWh\n";
  if (!report.assumptions().empty()) out << "assumptions: " << report.assumptions() << "\n";
}

void PrintReliabilityReport(std::ostream& out, int64_t sweep_id,
                            const v1::ReliabilityReport& report) {
  out << (sweep_id == 0 ? std::string("cluster") : absl::StrCat("sweep ", sweep_id))
      << ": reliability\n";
  int64_t total_failures = 0;
  std::vector<std::vector<std::string>> failure_rows;
  for (const v1::FailureCount& failure : report.failures()) {
    const std::string name = services::FailureClassName(failure.failure_class());
    failure_rows.push_back({name.empty() ? "UNSPECIFIED" : name, absl::StrCat(failure.count())});
    total_failures += failure.count();
  }
  failure_rows.push_back({"TOTAL", absl::StrCat(total_failures)});
  out << "\nfailures by class:\n";
  PrintTable(out, {"CLASS", "FAILURES"}, failure_rows, "  ");

  if (!report.mttf().empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const v1::MttfBySize& size : report.mttf()) {
      rows.push_back(
          {absl::StrCat(size.devices()), absl::StrCat(size.failures()),
           Significant(size.device_hours(), 4),
           std::isnan(size.mttf_hours()) ? "- (no failures)" : Significant(size.mttf_hours(), 4)});
    }
    out << "\nmean time to failure by job size:\n";
    PrintTable(out, {"DEVICES", "FAILURES", "DEVICE_HOURS", "MTTF_HOURS"}, rows, "  ");
  }

  if (!report.runs().empty()) {
    std::vector<std::vector<std::string>> rows;
    double wall_s = 0;
    double productive_s = 0;
    for (const v1::RunReliability& run : report.runs()) {
      rows.push_back({absl::StrCat(run.run_id()), absl::StrCat(run.attempts()),
                      Duration(run.wall_s()), Duration(run.productive_s()),
                      Significant(run.ettr(), 3), Significant(run.expected_ettr(), 3)});
      wall_s += run.wall_s();
      productive_s += run.productive_s();
    }
    rows.push_back({"TOTAL", "", Duration(wall_s), Duration(productive_s),
                    wall_s > 0 ? Significant(productive_s / wall_s, 3) : "-", ""});
    out << "\neffective training time ratio (ETTR = productive / wall time):\n";
    PrintTable(out, {"RUN", "ATTEMPTS", "WALL", "PRODUCTIVE", "ETTR", "EXPECTED_ETTR"}, rows, "  ");
  }

  out << "\nfailures per node-hour r = " << Significant(report.failures_per_node_hour(), 3)
      << ", restart overhead u0 = " << Duration(report.restart_overhead_s())
      << ", checkpoint write w = " << Duration(report.checkpoint_write_s())
      << ", Young/Daly checkpoint interval = " << Duration(report.young_daly_interval_s()) << "\n";
  if (!report.assumptions().empty()) out << "assumptions: " << report.assumptions() << "\n";
}

}  // namespace scalelab::cli
