#include "launcher/pool.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace scalelab::launcher {

absl::Status PoolOptions::Validate() const {
  if (min_workers < 0 || max_workers < 1 || min_workers > max_workers) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool: expected 0 <= min_workers <= max_workers and max_workers >= 1, got ",
                     min_workers, " and ", max_workers));
  }
  if (cpu_slots < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool: cpu_slots: expected at least 1, got ", cpu_slots));
  }
  if (gpus < 0) {
    return absl::InvalidArgumentError(absl::StrCat("pool: gpus: expected >= 0, got ", gpus));
  }
  if (idle_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("pool: idle_timeout: expected >= 0");
  }
  return absl::OkStatus();
}

void PoolPlanner::Submitted(const std::string& job_id, absl::Time now) {
  jobs_[job_id].idle_since = now;
}

int PoolPlanner::live_jobs() const {
  int live = 0;
  for (const auto& [id, job] : jobs_) live += job.released ? 0 : 1;
  return live;
}

PoolDecision PoolPlanner::Plan(const v1::ClusterSummary& summary,
                               const std::vector<JobStatus>& jobs, absl::Time now) {
  PoolDecision decision;
  int busy_lost = 0;
  std::map<std::string, const JobStatus*> listed;
  for (const JobStatus& job : jobs) listed[job.job_id] = &job;

  // Jobs that ended, or that the engine forgot, leave the pool; those it did not cancel are
  // lost and replaced. A live job the pool does not know (a previous launcher's) is adopted.
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    auto found = listed.find(it->first);
    const bool ended = found == listed.end() || found->second->phase == JobPhase::kEnded;
    if (!ended) {
      ++it;
      continue;
    }
    if (!it->second.released) {
      if (it->second.active_runs > 0) ++busy_lost;
      decision.lost.push_back(found == listed.end() ? JobStatus{it->first, JobPhase::kEnded, "GONE"}
                                                    : *found->second);
    }
    it = jobs_.erase(it);
  }
  for (const JobStatus& job : jobs) {
    if (job.phase != JobPhase::kEnded && !jobs_.count(job.job_id))
      jobs_[job.job_id].idle_since = now;
  }

  std::map<std::string, const v1::WorkerSummary*> workers;
  for (const v1::WorkerSummary& worker : summary.workers()) workers[worker.name()] = &worker;

  // Capacity that will take pending runs without a new job: free slots of registered workers
  // and whole slots of jobs whose worker has not registered yet.
  int live = 0;
  int64_t free_slots = 0;
  int64_t free_gpus = 0;
  for (auto& [id, job] : jobs_) {
    if (job.released) continue;
    ++live;
    auto worker = workers.find(worker_name_(id));
    if (worker == workers.end()) {
      free_slots += options_.cpu_slots;
      free_gpus += options_.gpus;
      continue;
    }
    job.active_runs = worker->second->active_runs();
    free_slots += std::max(0, worker->second->cpu_slots() - worker->second->active_runs());
    free_gpus += worker->second->active_runs() == 0 ? worker->second->gpus() : 0;
    if (worker->second->active_runs() > 0) {
      job.idle_since = absl::InfiniteFuture();
    } else if (job.idle_since == absl::InfiniteFuture()) {
      job.idle_since = now;
    }
  }

  auto ceil_div = [](int64_t a, int64_t b) { return b <= 0 ? 0 : (a + b - 1) / b; };
  int64_t wanted =
      ceil_div(std::max<int64_t>(0, summary.pending_runs() - free_slots), options_.cpu_slots);
  if (options_.gpus > 0) {
    wanted = std::max(
        wanted, ceil_div(std::max<int64_t>(0, summary.pending_gpus() - free_gpus), options_.gpus));
  }
  // The runs of a lost busy worker are not PENDING yet (their leases have not expired); its
  // replacement starts now rather than one lease ttl later. An idle lost worker is replaced
  // only when runs wait or the pool is below its minimum.
  wanted += busy_lost;
  wanted = std::max<int64_t>(wanted, static_cast<int64_t>(options_.min_workers) - live);
  decision.submit = static_cast<int>(std::min<int64_t>(wanted, options_.max_workers - live));
  decision.submit = std::max(decision.submit, 0);

  // Shrink only with an empty queue, idle workers first by how long they idled.
  if (summary.pending_runs() == 0 && decision.submit == 0) {
    int keep = live;
    for (auto& [id, job] : jobs_) {
      if (job.released || keep <= options_.min_workers) continue;
      if (job.idle_since == absl::InfiniteFuture() ||
          now - job.idle_since < options_.idle_timeout) {
        continue;
      }
      job.released = true;
      decision.cancel.push_back(id);
      --keep;
    }
  }
  return decision;
}

}  // namespace scalelab::launcher
