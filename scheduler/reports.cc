#include "scheduler/reports.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/analysis/reliability.h"
#include "services/common/run_state.h"

namespace scalelab::scheduler {
namespace {

constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

double Seconds(absl::Time time) { return absl::ToDoubleSeconds(time - absl::UnixEpoch()); }

}  // namespace

v1::CarbonReport BuildCarbonReport(int64_t sweep_id, const std::vector<v1::Run>& runs,
                                   const analysis::CarbonAssumptions& assumptions) {
  v1::CarbonReport report;
  report.set_sweep_id(sweep_id);
  report.set_pue(assumptions.pue);
  report.set_grid_g_per_kwh(assumptions.grid_g_per_kwh);
  int modelled = 0;
  for (const v1::Run& run : runs) {
    const v1::EnergyReport& energy = run.energy();
    if (energy.wall_s() <= 0 && energy.energy_j() <= 0) continue;  // never ran
    const bool gpu = energy.device_kind() == "gpu" || run.config().resources().gpus() > 0;
    const analysis::DeviceKind kind = gpu ? analysis::DeviceKind::kGpu : analysis::DeviceKind::kCpu;
    const int devices = energy.devices() > 0 ? energy.devices()
                        : gpu                ? run.config().resources().gpus()
                                             : std::max(1, run.config().resources().cpus());
    const double device_seconds =
        energy.device_seconds() > 0 ? energy.device_seconds() : devices * energy.wall_s();
    double energy_j = energy.energy_j();
    std::string source = energy.source();
    if (energy_j <= 0) {
      energy_j = analysis::ModelledEnergyJ(kind, devices, energy.wall_s(), assumptions);
      source = "model";
      ++modelled;
    }
    const analysis::CarbonFootprint footprint =
        analysis::Footprint(energy_j, kind, device_seconds, assumptions);
    v1::RunCarbon* carbon = report.add_runs();
    carbon->set_run_id(run.id());
    for (const auto& [key, value] : run.overrides()) (*carbon->mutable_overrides())[key] = value;
    carbon->set_energy_j(energy_j);
    carbon->set_source(source);
    carbon->set_operational_g(footprint.operational_g);
    carbon->set_embodied_g(footprint.embodied_g);
    carbon->set_total_g(footprint.total_g);
    const int64_t vocab =
        run.config().model().vocab_size() > 0 ? run.config().model().vocab_size() : 256;
    const bool has_loss = run.state() == v1::RUN_STATE_SUCCEEDED && std::isfinite(run.val_loss());
    carbon->set_final_loss(has_loss ? run.val_loss() : kNoValue);
    carbon->set_loss_improvement(has_loss ? std::log(static_cast<double>(vocab)) - run.val_loss()
                                          : kNoValue);
    carbon->set_g_per_loss_unit(
        has_loss ? analysis::Co2ePerLossImprovement(footprint.total_g, vocab, run.val_loss())
                 : kNoValue);
    report.set_energy_j(report.energy_j() + energy_j);
    report.set_operational_g(report.operational_g() + footprint.operational_g);
    report.set_embodied_g(report.embodied_g() + footprint.embodied_g);
    report.set_total_g(report.total_g() + footprint.total_g);
  }
  report.set_assumptions(absl::StrFormat(
      "operational = energy x PUE %.2f x grid %.0f g/kWh; embodied = device-hours x "
      "(GPU %.0f kg over %.0f h, CPU slot %.0f kg over %.0f h); %d of %d runs without a "
      "measurement use the power model (GPU %.0f W x %.2f, CPU slot %.0f W)",
      assumptions.pue, assumptions.grid_g_per_kwh, assumptions.gpu_embodied_kg,
      assumptions.gpu_lifetime_h, assumptions.cpu_slot_embodied_kg, assumptions.cpu_lifetime_h,
      modelled, report.runs_size(), assumptions.gpu_tdp_w, assumptions.gpu_utilisation,
      assumptions.cpu_slot_w));
  return report;
}

absl::StatusOr<v1::ReliabilityReport> BuildReliabilityReport(
    const std::vector<services::AttemptRecord>& attempts,
    const ReliabilityAssumptions& assumptions) {
  std::vector<analysis::AttemptRecord> records;
  std::map<int64_t, std::vector<double>> checkpoint_gaps;  // per run: seconds between checkpoints
  for (const services::AttemptRecord& attempt : attempts) {
    if (!attempt.ended_at.has_value()) continue;
    if (attempt.state == v1::RUN_STATE_CANCELLED ||
        attempt.failure_class == v1::FAILURE_CLASS_CANCELLED) {
      continue;
    }
    analysis::AttemptRecord record;
    record.run_id = attempt.run_id;
    record.attempt = attempt.attempt;
    record.devices = std::max(1, attempt.devices);
    record.started_s = Seconds(attempt.started_at);
    record.ended_s = std::max(record.started_s, Seconds(*attempt.ended_at));
    record.succeeded = attempt.state == v1::RUN_STATE_SUCCEEDED;
    record.failure_class =
        record.succeeded ? "" : std::string(services::FailureClassName(attempt.failure_class));
    double previous = 0;
    for (absl::Time time : attempt.checkpoint_times) {
      const double offset = Seconds(time) - record.started_s;
      if (offset < 0 || record.started_s + offset > record.ended_s) continue;
      record.checkpoint_offsets_s.push_back(offset);
      checkpoint_gaps[attempt.run_id].push_back(offset - previous);
      previous = offset;
    }
    records.push_back(std::move(record));
  }
  auto analysed = analysis::AnalyseAttempts(records);
  if (!analysed.ok()) return analysed.status();

  v1::ReliabilityReport report;
  for (const auto& [failure_class, count] : analysed->failures_by_class) {
    v1::FailureCount* failure = report.add_failures();
    failure->set_failure_class(services::ParseFailureClass(failure_class));
    failure->set_count(count);
  }
  for (const analysis::JobSizeReliability& size : analysed->by_job_size) {
    v1::MttfBySize* mttf = report.add_mttf();
    mttf->set_devices(size.devices);
    mttf->set_failures(size.failures);
    mttf->set_device_hours(size.device_hours);
    mttf->set_mttf_hours(size.mttf_device_hours);
  }
  const double r_per_s =
      std::isfinite(analysed->failures_per_node_hour) ? analysed->failures_per_node_hour / 3600 : 0;
  const double u0 =
      std::isfinite(analysed->mean_restart_overhead_s) ? analysed->mean_restart_overhead_s : 0;
  const double w = assumptions.checkpoint_write_s;
  report.set_failures_per_node_hour(analysed->failures_per_node_hour);
  report.set_restart_overhead_s(analysed->mean_restart_overhead_s);
  report.set_checkpoint_write_s(w);
  report.set_young_daly_interval_s(r_per_s > 0 ? analysis::DalyInterval(w, 1 / r_per_s) : kNoValue);
  for (const analysis::RunReliability& run : analysed->runs) {
    v1::RunReliability* out = report.add_runs();
    out->set_run_id(run.run_id);
    out->set_attempts(run.attempts);
    out->set_wall_s(run.wall_s);
    out->set_productive_s(run.productive_s);
    out->set_ettr(run.ettr);
    // Its checkpoint interval: the mean gap between checkpoints, or the whole run without any.
    const auto gaps = checkpoint_gaps.find(run.run_id);
    double interval = run.wall_s;
    if (gaps != checkpoint_gaps.end() && !gaps->second.empty()) {
      double sum = 0;
      for (double gap : gaps->second) sum += gap;
      interval = sum / static_cast<double>(gaps->second.size());
    }
    out->set_expected_ettr(interval > 0 ? analysis::ExpectedEttr(1, r_per_s, u0, w, interval)
                                        : kNoValue);
  }
  report.set_assumptions(absl::StrFormat(
      "one node per attempt; r = failures / node-hours over these attempts; u0 = mean gap "
      "between an attempt's end and its retry; checkpoint write w = %.0f s (assumed); expected "
      "ETTR = [1 - n r (u0 + dt/2)] / (1 + w/dt) with dt = the run's mean checkpoint interval "
      "(its wall time without checkpoints); interval = Daly's correction of sqrt(2 w M)",
      w));
  return report;
}

}  // namespace scalelab::scheduler
