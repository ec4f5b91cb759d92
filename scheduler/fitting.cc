#include "scheduler/fitting.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/time_util.h"
#include "scheduler/fit_process.h"
#include "services/analysis/allocation.h"
#include "services/analysis/bootstrap.h"
#include "services/analysis/chinchilla.h"
#include "services/analysis/comparison.h"
#include "services/analysis/compute_law.h"
#include "services/analysis/scaling_point.h"
#include "services/common/run_state.h"

namespace scalelab::scheduler {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

absl::Time ToTime(const google::protobuf::Timestamp& timestamp) {
  return absl::FromUnixNanos(google::protobuf::util::TimeUtil::TimestampToNanoseconds(timestamp));
}

v1::Estimate ToProto(const analysis::Estimate& estimate) {
  v1::Estimate proto;
  proto.set_value(estimate.value);
  proto.set_lo(estimate.lo);
  proto.set_hi(estimate.hi);
  return proto;
}

v1::Estimate PointOnly(double value) { return ToProto(analysis::Estimate{value}); }

// The bootstrap rows of a stored fit, in the analysis library's shape.
analysis::BootstrapSamples SamplesOf(const services::StoredFit& fit) {
  analysis::BootstrapSamples samples;
  samples.param_names = fit.param_names;
  samples.values = fit.samples;
  samples.requested = static_cast<int>(samples.num_samples());
  return samples;
}

bool IsUsable(const services::StoredFit& fit, size_t num_params) {
  return fit.params.size() == num_params && fit.message.empty();
}

// Points of a group: SUCCEEDED runs with a full record and a finite positive final loss. The
// others are described in `skipped`.
std::vector<analysis::ScalingPoint> CollectPoints(const FitGroup& group,
                                                  const std::map<int64_t, double>& final_loss,
                                                  std::vector<std::string>* skipped) {
  std::vector<analysis::ScalingPoint> points;
  for (const v1::Run* run : group.runs) {
    if (run->state() != v1::RUN_STATE_SUCCEEDED) {
      skipped->push_back(absl::StrCat("run ", run->id(), " did not succeed"));
      continue;
    }
    const v1::RunRecord& record = run->record();
    auto loss = final_loss.find(run->id());
    if (record.n_params() <= 0 || record.tokens() <= 0 || record.flops() <= 0) {
      skipped->push_back(absl::StrCat("run ", run->id(), " has no run record"));
      continue;
    }
    if (loss == final_loss.end() || !std::isfinite(loss->second) || loss->second <= 0) {
      skipped->push_back(absl::StrCat("run ", run->id(), " has no final loss"));
      continue;
    }
    analysis::ScalingPoint point;
    point.n_params = static_cast<double>(record.n_params());
    point.tokens = record.tokens();
    point.flops = record.flops();
    point.loss = loss->second;
    point.run_id = run->id();
    points.push_back(point);
  }
  return points;
}

std::string SkippedNote(const std::vector<std::string>& skipped) {
  if (skipped.empty()) return "";
  constexpr size_t kShown = 5;
  std::vector<std::string> shown(skipped.begin(),
                                 skipped.begin() + std::min(kShown, skipped.size()));
  std::string note = absl::StrJoin(shown, "; ");
  if (skipped.size() > kShown) absl::StrAppend(&note, "; and ", skipped.size() - kShown, " more");
  return note;
}

// Adds `name` with its interval over the samples of `derive` to the proto's estimates.
void AddDerived(const services::StoredFit& fit, const analysis::BootstrapSamples& samples,
                const std::string& name, const analysis::DerivedQuantity& derive, v1::Fit* proto) {
  const double value = derive(fit.params);
  (*proto->mutable_parameters())[name] = value;
  auto estimate = samples.num_samples() == 0
                      ? absl::StatusOr<analysis::Estimate>(analysis::Estimate{value})
                      : analysis::EstimateDerived(samples, fit.params, derive, fit.confidence);
  (*proto->mutable_estimates())[name] = estimate.ok() ? ToProto(*estimate) : PointOnly(value);
}

}  // namespace

bool IsFittedRun(const v1::Run& run) {
  return run.parent_run_id() == 0 &&
         (run.kind() == v1::RUN_KIND_PRETRAIN || run.kind() == v1::RUN_KIND_UNSPECIFIED);
}

std::vector<FitGroup> GroupRuns(const v1::FitSpec& spec, const std::vector<v1::Run>& runs) {
  std::map<std::map<std::string, std::string>, FitGroup> groups;
  for (const v1::Run& run : runs) {
    if (!IsFittedRun(run)) continue;
    std::map<std::string, std::string> key;
    for (const std::string& name : spec.group_by()) {
      auto value = run.overrides().find(name);
      key[name] = value == run.overrides().end() ? "" : value->second;
    }
    FitGroup& group = groups[key];
    group.key = key;
    group.runs.push_back(&run);
    group.complete = group.complete && services::IsTerminal(run.state());
    group.newest_update = std::max(group.newest_update, ToTime(run.updated_at()));
  }
  std::vector<FitGroup> ordered;
  ordered.reserve(groups.size());
  for (auto& [key, group] : groups) ordered.push_back(std::move(group));
  return ordered;
}

services::StoredFit FitOneGroup(int64_t sweep_id, const v1::FitSpec& spec, const FitGroup& group,
                                const std::map<int64_t, double>& final_loss,
                                const FitSettings& settings) {
  services::StoredFit out;
  out.sweep_id = sweep_id;
  out.law = spec.law().empty() ? "chinchilla" : spec.law();
  out.group = group.key;
  out.confidence = spec.confidence() > 0 ? spec.confidence() : 0.95;
  std::vector<std::string> skipped;
  std::vector<analysis::ScalingPoint> points = CollectPoints(group, final_loss, &skipped);
  out.n_points = static_cast<int>(points.size());
  for (const analysis::ScalingPoint& point : points) out.run_ids.push_back(point.run_id);
  const size_t needed = out.law == "compute" ? 3 : 5;
  if (points.size() < needed) {
    out.message = absl::StrCat("a ", out.law, " fit needs at least ", needed,
                               " succeeded runs with a run record and a final ", spec.metric(),
                               "; this group has ", points.size());
    if (!skipped.empty()) absl::StrAppend(&out.message, " (", SkippedNote(skipped), ")");
    return out;
  }
  analysis::FitGroupRequest request;
  request.law = out.law;
  request.bootstrap = spec.bootstrap();
  request.seed = settings.seed;
  request.threads = settings.threads;
  request.points = std::move(points);
  auto result = RunFitProcess(ResolveFitProgram(settings.program), request);
  if (!result.ok()) {
    out.message = std::string(result.status().message());
    return out;
  }
  if (!result->error.empty()) {
    out.message = result->error;
    return out;
  }
  out.param_names = std::move(result->param_names);
  out.params = std::move(result->params);
  out.samples = std::move(result->samples);
  out.objective = result->objective;
  out.holdout_rel_error = result->holdout_rel_error;
  return out;
}

std::vector<double> DefaultBudgets() { return {1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24}; }

v1::Fit ToFitProto(const services::StoredFit& fit, const std::vector<double>& budgets_flops) {
  v1::Fit proto;
  proto.set_id(fit.id);
  proto.set_law(fit.law);
  for (const auto& [key, value] : fit.group) (*proto.mutable_group())[key] = value;
  proto.set_loss(fit.objective);
  proto.set_n_points(fit.n_points);
  for (int64_t run_id : fit.run_ids) proto.add_run_ids(run_id);
  proto.set_confidence(fit.confidence);
  proto.set_holdout_rel_error(fit.holdout_rel_error);
  proto.set_message(fit.message);
  *proto.mutable_created_at() =
      google::protobuf::util::TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(fit.created_at));
  if (fit.params.empty() || fit.params.size() != fit.param_names.size()) return proto;

  const analysis::BootstrapSamples samples = SamplesOf(fit);
  proto.set_bootstrap(static_cast<int32_t>(samples.num_samples()));
  for (size_t param_idx = 0; param_idx < fit.params.size(); ++param_idx) {
    AddDerived(
        fit, samples, fit.param_names[param_idx],
        [param_idx](absl::Span<const double> row) { return row[param_idx]; }, &proto);
  }
  auto exp_of = [&](const std::string& log_name) -> analysis::DerivedQuantity {
    const size_t idx =
        static_cast<size_t>(std::find(fit.param_names.begin(), fit.param_names.end(), log_name) -
                            fit.param_names.begin());
    return [idx](absl::Span<const double> row) { return std::exp(row[idx]); };
  };
  if (fit.law == "compute") {
    AddDerived(fit, samples, "E", exp_of("e"), &proto);
    AddDerived(fit, samples, "k", exp_of("log_k"), &proto);
    return proto;
  }
  AddDerived(fit, samples, "A", exp_of("a"), &proto);
  AddDerived(fit, samples, "B", exp_of("b"), &proto);
  AddDerived(fit, samples, "E", exp_of("e"), &proto);
  AddDerived(
      fit, samples, "G",
      [](absl::Span<const double> row) {
        const auto params = analysis::ChinchillaParams::FromVector(row);
        return std::pow(params.alpha * params.A() / (params.beta * params.B()),
                        1.0 / (params.alpha + params.beta));
      },
      &proto);
  const auto best = analysis::ChinchillaParams::FromVector(fit.params);
  for (double flops : budgets_flops) {
    v1::Allocation* allocation = proto.add_allocations();
    allocation->set_flops(flops);
    if (samples.num_samples() > 0) {
      auto estimate = analysis::EstimateAllocation(best, samples, flops, fit.confidence);
      if (estimate.ok()) {
        *allocation->mutable_n_params() = ToProto(estimate->n_params);
        *allocation->mutable_tokens() = ToProto(estimate->tokens);
        *allocation->mutable_loss() = ToProto(estimate->loss);
        continue;
      }
    }
    auto point = analysis::OptimalAllocation(best, flops);
    *allocation->mutable_n_params() = PointOnly(point.ok() ? point->n_params : kNaN);
    *allocation->mutable_tokens() = PointOnly(point.ok() ? point->tokens : kNaN);
    *allocation->mutable_loss() = PointOnly(point.ok() ? point->loss : kNaN);
  }
  return proto;
}

std::vector<v1::EfficiencyComparison> CompareGroups(
    const std::vector<services::StoredFit>& fits, double n_params, double target_loss,
    const std::map<int64_t, v1::RunRecord>& records) {
  std::vector<const services::StoredFit*> usable;
  for (const services::StoredFit& fit : fits) {
    if (fit.law == "chinchilla" && IsUsable(fit, analysis::ChinchillaParams::kNumParams)) {
      usable.push_back(&fit);
    }
  }
  std::vector<v1::EfficiencyComparison> comparisons;
  if (usable.size() < 2) return comparisons;
  double max_n = 0;
  double max_tokens = 0;
  for (const services::StoredFit* fit : usable) {
    for (int64_t run_id : fit->run_ids) {
      auto record = records.find(run_id);
      if (record == records.end()) continue;
      max_n = std::max(max_n, static_cast<double>(record->second.n_params()));
      max_tokens = std::max(max_tokens, record->second.tokens());
    }
  }
  const double n = n_params > 0 ? n_params : max_n;
  const double target =
      target_loss > 0 ? target_loss
                      : analysis::Predict(analysis::ChinchillaParams::FromVector(usable[0]->params),
                                          n, max_tokens);
  if (!(n > 0) || !(target > 0)) return comparisons;
  for (size_t i = 0; i < usable.size(); ++i) {
    for (size_t j = i + 1; j < usable.size(); ++j) {
      analysis::GroupFit first;
      first.fit.params = analysis::ChinchillaParams::FromVector(usable[i]->params);
      first.samples = SamplesOf(*usable[i]);
      analysis::GroupFit second;
      second.fit.params = analysis::ChinchillaParams::FromVector(usable[j]->params);
      second.samples = SamplesOf(*usable[j]);
      auto forward =
          analysis::DataEfficiencyMultiplier(first.fit.params, second.fit.params, n, target);
      if (!forward.ok()) continue;
      // `faster` needs fewer tokens: the multiplier of faster over slower is >= 1.
      const bool second_faster = *forward >= 1;
      const analysis::GroupFit& slower = second_faster ? first : second;
      const analysis::GroupFit& faster = second_faster ? second : first;
      const services::StoredFit& slower_fit = second_faster ? *usable[i] : *usable[j];
      const services::StoredFit& faster_fit = second_faster ? *usable[j] : *usable[i];
      v1::EfficiencyComparison comparison;
      for (const auto& [key, value] : faster_fit.group) (*comparison.mutable_faster())[key] = value;
      for (const auto& [key, value] : slower_fit.group) (*comparison.mutable_slower())[key] = value;
      comparison.set_n_params(n);
      comparison.set_target_loss(target);
      auto estimate = slower.samples.num_samples() > 0 && faster.samples.num_samples() > 0
                          ? analysis::EstimateDataEfficiencyMultiplier(slower, faster, n, target,
                                                                       usable[i]->confidence)
                          : absl::StatusOr<analysis::Estimate>(absl::UnknownError("no samples"));
      *comparison.mutable_multiplier() =
          estimate.ok() ? ToProto(*estimate) : PointOnly(second_faster ? *forward : 1.0 / *forward);
      comparisons.push_back(std::move(comparison));
    }
  }
  return comparisons;
}

}  // namespace scalelab::scheduler
