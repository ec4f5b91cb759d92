#include "scheduler/admission.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "scheduler/preemption_pass.h"
#include "scheduler/scheduler_metrics.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {

absl::Status AdmissionOptions::Validate() const {
  if (absl::Status valid = placement.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("placement.", valid.message()));
  }
  if (period <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("period: expected > 0, got ", absl::FormatDuration(period)));
  }
  if (absl::Status valid = preemption.Validate(); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("preemption.", valid.message()));
  }
  if (admission_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("admission_timeout: expected > 0, got ",
                                                   absl::FormatDuration(admission_timeout)));
  }
  return absl::OkStatus();
}

absl::StatusOr<AdmissionPass> RunAdmissionPass(PlacementState& state, services::Store& store,
                                               absl::Time now, const PlacementOptions& options) {
  return RunAdmissionPass(state, store, now, options, nullptr);
}

absl::StatusOr<AdmissionPass> RunAdmissionPass(PlacementState& state, services::Store& store,
                                               absl::Time now, const PlacementOptions& options,
                                               const PreemptionOptions* preemption) {
  const auto start = std::chrono::steady_clock::now();
  AdmissionPass pass;
  auto since = [](std::chrono::steady_clock::time_point from) {
    return absl::FromChrono(std::chrono::steady_clock::now() - from);
  };
  absl::StatusOr<ClusterSnapshot> snapshot = state.Snapshot(0);
  if (!snapshot.ok()) return snapshot.status();
  pass.read_duration = since(start);
  pass.considered = static_cast<int>(snapshot->pending.size());
  const auto decide_start = std::chrono::steady_clock::now();
  absl::StatusOr<PlacementResult> placed = Place(*snapshot, options);
  if (!placed.ok()) return placed.status();
  pass.decide_duration = since(decide_start);
  const auto write_start = std::chrono::steady_clock::now();
  std::vector<services::AdmissionGrant> grants;
  grants.reserve(placed->placed.size());
  for (const PlacementDecision& decision : placed->placed) {
    services::AdmissionGrant grant;
    grant.run_id = decision.run_id;
    grant.worker_id = decision.worker_id;
    grant.gpu_indices = decision.gpu_indices;  // copied: the preemption step reads them
    grant.cpu_slots = decision.cpu_slots;
    grant.rank = decision.rank;
    grants.push_back(std::move(grant));
  }
  absl::StatusOr<std::vector<int64_t>> admitted = store.AdmitRuns(grants, now);
  if (!admitted.ok()) return admitted.status();
  pass.write_duration = since(write_start);
  pass.admitted = *std::move(admitted);
  // Preemption hook: what still waits may evict lower classes (scheduler/preemption_pass.h).
  if (preemption != nullptr && preemption->enabled) {
    absl::StatusOr<PreemptionStepResult> preempted =
        RunPreemptionStep(store, *snapshot, *placed, now, *preemption);
    if (!preempted.ok()) return preempted.status();
    pass.preemptors = std::move(preempted->preemptors);
    pass.preempted = preempted->victims;
  }
  pass.unplaced = std::move(placed->unplaced);
  pass.duration = since(start);
  return pass;
}

Admitter::Admitter(PlacementState* state, services::Store* store, SchedulerMetrics* metrics,
                   AdmissionOptions options)
    : state_(state), store_(store), metrics_(metrics), options_(std::move(options)) {}

Admitter::~Admitter() { Stop(); }

absl::StatusOr<AdmissionPass> Admitter::RunOnce(absl::Time now) {
  absl::MutexLock pass_lock(&pass_mu_);
  absl::StatusOr<AdmissionPass> pass =
      RunAdmissionPass(*state_, *store_, now, options_.placement, &options_.preemption);
  if (pass.ok() && metrics_ != nullptr) {
    metrics_->admissions.Increment(static_cast<double>(pass->admitted.size()));
    metrics_->preemptions.Increment(static_cast<double>(pass->preempted));
    metrics_->cycle_seconds.Observe(absl::ToDoubleSeconds(pass->duration));
  }
  return pass;
}

void Admitter::Start(services::Clock* clock, std::function<bool()> may_act) {
  {
    absl::MutexLock lock(&mu_);
    if (running_) return;
    running_ = true;
  }
  thread_ = std::thread([this, clock, may_act = std::move(may_act)] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        auto woken_or_stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return woken_ || stopping_;
        };
        mu_.AwaitWithTimeout(absl::Condition(&woken_or_stopping), options_.period);
        if (stopping_) return;
        woken_ = false;
        ++passes_started_;
      }
      absl::StatusOr<AdmissionPass> pass = may_act && !may_act()
                                               ? absl::StatusOr<AdmissionPass>(AdmissionPass{})
                                               : RunOnce(clock->Now());
      if (!pass.ok()) {
        spdlog::warn("admission pass: {}", pass.status().ToString());
      } else if (!pass->admitted.empty()) {
        spdlog::debug("admission pass: {} of {} pending admitted in {}", pass->admitted.size(),
                      pass->considered, absl::FormatDuration(pass->duration));
      }
      absl::MutexLock lock(&mu_);
      ++passes_ended_;
    }
  });
}

void Admitter::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

bool Admitter::WaitForPass(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (!running_ || stopping_) return false;
  woken_ = true;
  // A pass that began after this call ends when passes_ended_ passes the count started so far
  // plus one (the one running now, if any, does not count).
  const int64_t target = passes_started_ + 1;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return passes_ended_ >= target || stopping_;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout) && !stopping_;
}

void Admitter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace scalelab::scheduler
