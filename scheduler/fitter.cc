#include "scheduler/fitter.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {
namespace {

// Every run of a sweep, all pages.
absl::StatusOr<std::vector<v1::Run>> AllRuns(services::Store* store, int64_t sweep_id) {
  std::vector<v1::Run> runs;
  std::string token;
  do {
    auto page = store->ListRunsPage(sweep_id, v1::RUN_STATE_UNSPECIFIED, 0, token);
    if (!page.ok()) return page.status();
    for (v1::Run& run : page->runs) runs.push_back(std::move(run));
    token = page->next_page_token;
  } while (!token.empty());
  return runs;
}

// Final value of `metric` per run: the run's last val_loss for "val_loss" (kept on the run row),
// otherwise the last point of that series (one query for the whole sweep).
absl::StatusOr<std::map<int64_t, double>> FinalLosses(services::Store* store, int64_t sweep_id,
                                                      const std::string& metric,
                                                      const std::vector<v1::Run>& runs) {
  std::map<int64_t, double> losses;
  if (metric.empty() || metric == "val_loss") {
    for (const v1::Run& run : runs) losses[run.id()] = run.val_loss();
    return losses;
  }
  // Downsampling keeps the last point, so two points per run suffice.
  auto curves = store->GetSweepCurves(sweep_id, metric, 2);
  if (!curves.ok()) return curves.status();
  for (const v1::RunCurve& curve : *curves) {
    if (curve.points_size() > 0) {
      losses[curve.run().id()] = curve.points(curve.points_size() - 1).value();
    }
  }
  return losses;
}

}  // namespace

absl::Status FitterOptions::Validate() const {
  if (interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fit interval: expected a positive duration, got ", absl::FormatDuration(interval)));
  }
  if (max_sweeps_per_pass < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_sweeps_per_pass: expected >= 1, got ", max_sweeps_per_pass));
  }
  if (settings.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fit threads: expected >= 0, got ", settings.threads));
  }
  return absl::OkStatus();
}

absl::StatusOr<FitPassResult> Fitter::RunOnce() {
  FitPassResult result;
  auto sweeps = store_->SweepsWithStaleFits(options_.max_sweeps_per_pass);
  if (!sweeps.ok()) return sweeps.status();
  for (int64_t sweep_id : *sweeps) {
    auto fitted = FitSweep(sweep_id);
    if (!fitted.ok()) return fitted.status();
    ++result.sweeps_examined;
    result.groups_fitted += *fitted;
  }
  return result;
}

absl::StatusOr<int> Fitter::FitSweep(int64_t sweep_id) {
  auto sweep = store_->GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();
  const v1::FitSpec& spec = sweep->spec().fit();
  if (spec.law() == "none") return 0;
  auto runs = AllRuns(store_, sweep_id);
  if (!runs.ok()) return runs.status();
  std::vector<FitGroup> groups = GroupRuns(spec, *runs);
  absl::Time newest = absl::InfinitePast();
  for (const FitGroup& group : groups) newest = std::max(newest, group.newest_update);
  auto seen = examined_.find(sweep_id);
  if (seen != examined_.end() && seen->second >= newest) return 0;

  auto existing = store_->ListFits(sweep_id);
  if (!existing.ok()) return existing.status();
  std::map<std::map<std::string, std::string>, absl::Time> fitted_at;
  for (const services::StoredFit& fit : *existing) {
    if (fit.law == spec.law()) fitted_at[fit.group] = fit.created_at;
  }
  auto losses = FinalLosses(store_, sweep_id, spec.metric(), *runs);
  if (!losses.ok()) return losses.status();

  int written = 0;
  for (const FitGroup& group : groups) {
    if (!group.complete) continue;
    auto previous = fitted_at.find(group.key);
    if (previous != fitted_at.end() && previous->second >= group.newest_update) continue;
    const absl::Time start = absl::Now();
    services::StoredFit fit = FitOneGroup(sweep_id, spec, group, *losses, options_.settings);
    auto id = store_->SaveFit(fit);
    if (!id.ok()) return id.status();
    ++written;
    spdlog::info(
        "fit sweep={} law={} group={{{}}} points={} objective={:.6g} bootstrap={} took={} {}",
        sweep_id, fit.law, absl::StrJoin(group.key, ",", absl::PairFormatter("=")), fit.n_points,
        fit.objective, fit.params.empty() ? 0 : fit.samples.size() / fit.params.size(),
        absl::FormatDuration(absl::Now() - start), fit.message);
  }
  examined_[sweep_id] = newest;
  return written;
}

}  // namespace scalelab::scheduler
