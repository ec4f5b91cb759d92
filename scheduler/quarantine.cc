#include "scheduler/quarantine.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace scalelab::scheduler {

absl::Status QuarantineOptions::Validate() const {
  if (window <= absl::ZeroDuration() || cooldown < absl::ZeroDuration() ||
      check_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("window/cooldown/check_interval: expected > 0, >= 0, > 0, got ",
                     absl::FormatDuration(window), ", ", absl::FormatDuration(cooldown), ", ",
                     absl::FormatDuration(check_interval)));
  }
  if (min_failures < 1 || !(outlier_factor >= 1) || release_after_healthy < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_failures/outlier_factor/release_after_healthy: expected >= 1, got ",
                     min_failures, ", ", outlier_factor, ", ", release_after_healthy));
  }
  return absl::OkStatus();
}

std::vector<QuarantineAction> DecideQuarantine(
    const std::vector<services::WorkerFailureStats>& workers, absl::Time now,
    const QuarantineOptions& options) {
  std::vector<QuarantineAction> actions;
  int64_t total_failures = 0;
  int alive = 0;
  for (const services::WorkerFailureStats& worker : workers) {
    total_failures += worker.infra_failures;
    if (worker.state == "ALIVE") ++alive;
  }
  for (const services::WorkerFailureStats& worker : workers) {
    if (worker.state == "QUARANTINED") {
      const bool cooled =
          !worker.quarantined_at.has_value() || now - *worker.quarantined_at >= options.cooldown;
      if (cooled && worker.healthy_streak >= options.release_after_healthy) {
        actions.push_back({worker.worker_id, false,
                           absl::StrCat(worker.healthy_streak,
                                        " healthy heartbeats in a row after the cool-down")});
      }
      continue;
    }
    if (worker.infra_failures < options.min_failures || alive <= 1) continue;
    const double others_mean = workers.size() > 1
                                   ? static_cast<double>(total_failures - worker.infra_failures) /
                                         static_cast<double>(workers.size() - 1)
                                   : 0.0;
    if (worker.infra_failures <= options.outlier_factor * others_mean) continue;
    actions.push_back(
        {worker.worker_id, true,
         absl::StrFormat("%d infrastructure failures in the last %s; the other workers' mean is "
                         "%.2f (threshold: >= %d and > %.1fx that mean)",
                         worker.infra_failures, absl::FormatDuration(options.window), others_mean,
                         options.min_failures, options.outlier_factor)});
    --alive;  // never quarantine the last live worker
  }
  return actions;
}

}  // namespace scalelab::scheduler
