#include "services/analysis/reliability.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace scalelab::analysis {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kSecondsPerHour = 3600;

bool NonNegative(double value) { return std::isfinite(value) && value >= 0; }

absl::Status CheckRecord(const AttemptRecord& record) {
  auto error = [&](const char* field, auto value, const char* expected) {
    return absl::InvalidArgumentError(absl::StrCat("attempt ", record.run_id, "/", record.attempt,
                                                   ": ", field, ": expected ", expected, ", got ",
                                                   value));
  };
  if (!std::isfinite(record.started_s)) return error("started_s", record.started_s, "a time");
  if (!std::isfinite(record.ended_s) || record.ended_s < record.started_s) {
    return error("ended_s", record.ended_s, "a time at or after started_s");
  }
  if (record.devices < 0) return error("devices", record.devices, ">= 0");
  if (record.nodes < 1) return error("nodes", record.nodes, ">= 1");
  const double duration = record.ended_s - record.started_s;
  for (double offset : record.checkpoint_offsets_s) {
    if (!NonNegative(offset) || offset > duration) {
      return error("checkpoint_offsets_s", offset, "seconds within the attempt");
    }
  }
  return absl::OkStatus();
}

double Productive(const AttemptRecord& record) {
  if (record.succeeded) return record.ended_s - record.started_s;
  if (record.checkpoint_offsets_s.empty()) return 0;
  return *std::max_element(record.checkpoint_offsets_s.begin(), record.checkpoint_offsets_s.end());
}

}  // namespace

double ExpectedEttr(int n_nodes, double failures_per_node_s, double restart_overhead_s,
                    double checkpoint_write_s, double checkpoint_interval_s) {
  if (n_nodes < 0 || !NonNegative(failures_per_node_s) || !NonNegative(restart_overhead_s) ||
      !NonNegative(checkpoint_write_s) || !std::isfinite(checkpoint_interval_s) ||
      checkpoint_interval_s <= 0) {
    return kNaN;
  }
  const double lost =
      n_nodes * failures_per_node_s * (restart_overhead_s + checkpoint_interval_s / 2);
  const double ettr = (1 - lost) / (1 + checkpoint_write_s / checkpoint_interval_s);
  return std::clamp(ettr, 0.0, 1.0);
}

double YoungInterval(double checkpoint_write_s, double mtbf_s) {
  if (!NonNegative(checkpoint_write_s) || !std::isfinite(mtbf_s) || mtbf_s <= 0) return kNaN;
  return std::sqrt(2 * checkpoint_write_s * mtbf_s);
}

double DalyInterval(double checkpoint_write_s, double mtbf_s) {
  if (!NonNegative(checkpoint_write_s) || !std::isfinite(mtbf_s) || mtbf_s <= 0) return kNaN;
  if (checkpoint_write_s >= 2 * mtbf_s) return mtbf_s;
  const double ratio = checkpoint_write_s / (2 * mtbf_s);
  return std::sqrt(2 * checkpoint_write_s * mtbf_s) * (1 + std::sqrt(ratio) / 3 + ratio / 9) -
         checkpoint_write_s;
}

absl::StatusOr<ReliabilityReport> AnalyseAttempts(absl::Span<const AttemptRecord> attempts) {
  for (const AttemptRecord& record : attempts) {
    if (auto status = CheckRecord(record); !status.ok()) return status;
  }
  // Attempts of a run in attempt order.
  std::vector<const AttemptRecord*> ordered;
  for (const AttemptRecord& record : attempts) ordered.push_back(&record);
  std::sort(ordered.begin(), ordered.end(), [](const AttemptRecord* lhs, const AttemptRecord* rhs) {
    return std::pair(lhs->run_id, lhs->attempt) < std::pair(rhs->run_id, rhs->attempt);
  });
  for (size_t idx = 1; idx < ordered.size(); ++idx) {
    if (ordered[idx]->run_id == ordered[idx - 1]->run_id &&
        ordered[idx]->attempt == ordered[idx - 1]->attempt) {
      return absl::InvalidArgumentError(absl::StrCat("attempt ", ordered[idx]->run_id, "/",
                                                     ordered[idx]->attempt,
                                                     ": appears more than once"));
    }
  }

  ReliabilityReport report;
  std::map<int, JobSizeReliability> by_size;
  double restart_gap_sum = 0;
  double run_started_s = 0;
  for (size_t idx = 0; idx < ordered.size(); ++idx) {
    const AttemptRecord& record = *ordered[idx];
    const bool first_of_run = idx == 0 || ordered[idx - 1]->run_id != record.run_id;
    if (first_of_run) {
      RunReliability run;
      run.run_id = record.run_id;
      report.runs.push_back(run);
      run_started_s = record.started_s;
    } else {
      restart_gap_sum += std::max(0.0, record.started_s - ordered[idx - 1]->ended_s);
      ++report.restarts;
    }
    RunReliability& run = report.runs.back();
    ++run.attempts;
    run.succeeded = record.succeeded;
    run.productive_s += Productive(record);
    // From the first start to the latest end.
    run.wall_s = std::max(run.wall_s, record.ended_s - run_started_s);
    const double duration_s = record.ended_s - record.started_s;
    JobSizeReliability& size = by_size[record.devices];
    size.devices = record.devices;
    ++size.attempts;
    size.device_hours += record.devices * duration_s / kSecondsPerHour;
    report.node_hours += record.nodes * duration_s / kSecondsPerHour;
    if (!record.succeeded) {
      ++size.failures;
      ++report.failures;
      ++report.failures_by_class[record.failure_class.empty() ? "unknown" : record.failure_class];
    }
  }
  for (RunReliability& run : report.runs) {
    run.ettr = run.wall_s > 0 ? run.productive_s / run.wall_s : kNaN;
  }
  for (auto& [devices, size] : by_size) {
    size.mttf_device_hours = size.failures > 0 ? size.device_hours / size.failures : kNaN;
    report.by_job_size.push_back(size);
  }
  report.failures_per_node_hour =
      report.node_hours > 0 ? report.failures / report.node_hours : kNaN;
  report.mean_restart_overhead_s = report.restarts > 0 ? restart_gap_sum / report.restarts : kNaN;
  return report;
}

}  // namespace scalelab::analysis
