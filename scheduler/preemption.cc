#include "scheduler/preemption.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

namespace scalelab::scheduler {
namespace {

// Subsets examined per (run, worker) before falling back to a greedy pick. A worker rarely runs
// more than a handful of attempts; the cap only bounds a pathological one.
constexpr int kMaxSubsetsExamined = 20000;

// What a candidate set of victims costs; smaller is cheaper (the header's order).
struct Cost {
  int highest_class = 0;
  int victims = 0;
  double lost_s = 0;
  int64_t worker_id = 0;
  std::vector<int64_t> run_ids;

  bool operator<(const Cost& other) const {
    return std::tie(highest_class, victims, lost_s, worker_id, run_ids) <
           std::tie(other.highest_class, other.victims, other.lost_s, other.worker_id,
                    other.run_ids);
  }
};

// Per worker: what a pass's earlier decisions changed.
struct WorkerView {
  const WorkerState* worker = nullptr;
  std::set<int> free_gpus;  // indices free now (not held, not taken by this pass's preemptors)
  int free_slots = 0;
  // Resources of victims in flight that no preemptor takes: free once those attempts end.
  std::set<int> soon_free_gpus;
  int soon_free_slots = 0;
};

std::string DemandText(const ResourceDemand& demand) {
  std::string text;
  if (demand.gpus > 0) {
    absl::StrAppend(&text, demand.gpus, demand.gpus == 1 ? " GPU and " : " GPUs and ");
  }
  absl::StrAppend(&text, demand.cpu_slots, demand.cpu_slots == 1 ? " CPU slot" : " CPU slots");
  return text;
}

int MatchingCount(const WorkerState& worker, const RunRequest& run, const std::set<int>& indices) {
  int count = 0;
  for (const Gpu& gpu : worker.gpus) {
    if (indices.count(gpu.index) > 0 && GpuMatches(gpu, run)) ++count;
  }
  return count;
}

bool FitsIn(const WorkerState& worker, const RunRequest& run, const std::set<int>& gpus,
            int slots) {
  const ResourceDemand demand = DemandOf(run);
  return slots >= demand.cpu_slots && MatchingCount(worker, run, gpus) >= demand.gpus;
}

double LostSeconds(const RunningAttempt& attempt, absl::Time now) {
  const absl::Time since = std::max(attempt.started_at, attempt.last_checkpoint_at);
  if (since == absl::InfinitePast()) return 0;
  return std::max(0.0, absl::ToDoubleSeconds(now - since));
}

// The cheapest victim set among `candidates` (all eligible, on `view`'s worker) that makes `run`
// fit, or false. Sets are tried by size, smallest first; within a size every combination is
// costed (bounded by kMaxSubsetsExamined, then the greedy set by class and work lost).
bool CheapestSet(const WorkerView& view, const RunRequest& run,
                 const std::vector<const RunningAttempt*>& candidates, absl::Time now,
                 Cost* best_cost, std::vector<const RunningAttempt*>* best_set) {
  const int n = static_cast<int>(candidates.size());
  auto fits_with = [&](const std::vector<int>& chosen) {
    std::set<int> gpus = view.free_gpus;
    int slots = view.free_slots;
    for (int idx : chosen) {
      gpus.insert(candidates[idx]->gpu_indices.begin(), candidates[idx]->gpu_indices.end());
      slots += candidates[idx]->cpu_slots;
    }
    return FitsIn(*view.worker, run, gpus, slots);
  };
  auto cost_of = [&](const std::vector<int>& chosen) {
    Cost cost;
    cost.worker_id = view.worker->worker_id;
    cost.victims = static_cast<int>(chosen.size());
    for (int idx : chosen) {
      cost.highest_class = std::max(cost.highest_class, candidates[idx]->priority);
      cost.lost_s += LostSeconds(*candidates[idx], now);
      cost.run_ids.push_back(candidates[idx]->run_id);
    }
    std::sort(cost.run_ids.begin(), cost.run_ids.end());
    return cost;
  };
  bool found = false;
  auto consider = [&](const std::vector<int>& chosen) {
    if (!fits_with(chosen)) return;
    Cost cost = cost_of(chosen);
    if (!found || cost < *best_cost) {
      found = true;
      *best_cost = std::move(cost);
      best_set->clear();
      for (int idx : chosen) best_set->push_back(candidates[idx]);
    }
  };
  if (!fits_with([&] {
        std::vector<int> all(n);
        for (int idx = 0; idx < n; ++idx) all[idx] = idx;
        return all;
      }())) {
    return false;  // even every candidate together is not enough
  }
  // The class bound comes first in the cost, so sets are searched class by class: the first
  // class bound with any fitting set wins; within it, the smallest size wins.
  std::set<int> classes;
  for (const RunningAttempt* attempt : candidates) classes.insert(attempt->priority);
  int examined = 0;
  for (int bound : classes) {
    std::vector<int> allowed;
    for (int idx = 0; idx < n; ++idx) {
      if (candidates[idx]->priority <= bound) allowed.push_back(idx);
    }
    const int m = static_cast<int>(allowed.size());
    for (int size = 1; size <= m && !found; ++size) {
      // Combinations of `size` of `allowed`, in lexicographic order.
      std::vector<int> pick(size);
      for (int idx = 0; idx < size; ++idx) pick[idx] = idx;
      while (true) {
        std::vector<int> chosen(size);
        for (int idx = 0; idx < size; ++idx) chosen[idx] = allowed[pick[idx]];
        consider(chosen);
        if (++examined > kMaxSubsetsExamined) break;
        int pos = size - 1;
        while (pos >= 0 && pick[pos] == m - size + pos) --pos;
        if (pos < 0) break;
        ++pick[pos];
        for (int idx = pos + 1; idx < size; ++idx) pick[idx] = pick[idx - 1] + 1;
      }
      if (examined > kMaxSubsetsExamined) break;
    }
    if (found) return true;
    if (examined > kMaxSubsetsExamined) break;
  }
  // Too many to search: add victims cheapest first (class, work lost, id) until the run fits.
  std::vector<int> order(n);
  for (int idx = 0; idx < n; ++idx) order[idx] = idx;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return std::make_tuple(candidates[a]->priority, LostSeconds(*candidates[a], now),
                           candidates[a]->run_id) <
           std::make_tuple(candidates[b]->priority, LostSeconds(*candidates[b], now),
                           candidates[b]->run_id);
  });
  std::vector<int> chosen;
  for (int idx : order) {
    chosen.push_back(idx);
    if (fits_with(chosen)) {
      consider(chosen);
      break;
    }
  }
  return found;
}

}  // namespace

absl::Status PreemptionOptions::Validate() const {
  if (max_per_pass < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_per_pass: expected >= 1, got ", max_per_pass));
  }
  if (cooldown < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cooldown: expected >= 0, got ", absl::FormatDuration(cooldown)));
  }
  return absl::OkStatus();
}

std::vector<WorkerState> WorkersAfterPlacement(const ClusterSnapshot& snapshot,
                                               const std::vector<PlacementDecision>& placed) {
  std::vector<WorkerState> workers = snapshot.workers;
  for (const PlacementDecision& decision : placed) {
    for (WorkerState& worker : workers) {
      if (worker.worker_id != decision.worker_id) continue;
      // Best effort: Place never over-commits, so a refusal means a stale decision; skip it.
      MarkHeld(worker, decision.gpu_indices, decision.cpu_slots).IgnoreError();
    }
  }
  return workers;
}

std::vector<PreemptionDecision> PlanPreemptions(const PreemptionInput& input,
                                                const std::vector<RunRequest>& pending,
                                                const std::vector<UnplacedRun>& unplaced,
                                                absl::Time now, const PreemptionOptions& options) {
  std::vector<PreemptionDecision> decisions;
  if (!options.enabled || options.max_per_pass < 1) return decisions;

  std::map<int64_t, WorkerView> views;
  for (const WorkerState& worker : input.workers) {
    WorkerView& view = views[worker.worker_id];
    view.worker = &worker;
    for (const Gpu& gpu : worker.gpus) {
      if (gpu.free) view.free_gpus.insert(gpu.index);
    }
    view.free_slots = worker.cpu_slots_free;
  }
  // What victims in flight will free beyond what their preemptors take.
  std::map<int64_t, int> victim_slots;
  for (const RunningAttempt& attempt : input.running) {
    if (!attempt.preempt_requested) continue;
    auto view = views.find(attempt.worker_id);
    if (view == views.end()) continue;
    view->second.soon_free_gpus.insert(attempt.gpu_indices.begin(), attempt.gpu_indices.end());
    victim_slots[attempt.worker_id] += attempt.cpu_slots;
  }
  std::map<int64_t, int> preemptor_slots;
  for (const InFlightPreemptor& preemptor : input.in_flight) {
    auto view = views.find(preemptor.worker_id);
    if (view == views.end()) continue;
    for (int index : preemptor.gpu_indices) view->second.soon_free_gpus.erase(index);
    preemptor_slots[preemptor.worker_id] += preemptor.cpu_slots;
  }
  for (auto& [worker_id, view] : views) {
    view.soon_free_slots = std::max(0, victim_slots[worker_id] - preemptor_slots[worker_id]);
  }

  std::map<int64_t, const RunRequest*> by_id;
  for (const RunRequest& run : pending) by_id[run.run_id] = &run;
  // Attempts by worker, and the lowest class any of them has: a run of that class or lower has
  // no victim anywhere, so most passes end here without looking at workers.
  std::map<int64_t, std::vector<const RunningAttempt*>> running_on;
  int lowest_victim_class = kPriorityClassCount;
  for (const RunningAttempt& attempt : input.running) {
    if (views.count(attempt.worker_id) == 0 || attempt.preempt_requested) continue;
    running_on[attempt.worker_id].push_back(&attempt);
    lowest_victim_class = std::min(lowest_victim_class, attempt.priority);
  }
  // Shapes (class, demand, requirements) that found no victims this pass: an equal run will
  // not either (decisions only take victims away), so a long queue costs one search per shape.
  std::set<std::string> failed_shapes;
  auto shape_of = [](const RunRequest& run) {
    std::string shape =
        absl::StrCat(run.priority, "/", run.gpus, "/", run.cpus, "/", run.gpu_model.value_or("*"),
                     "/", run.min_gpu_memory_bytes.value_or(-1), "/");
    for (const auto& [key, value] : run.node_labels) absl::StrAppend(&shape, key, "=", value, ",");
    for (int64_t worker_id : run.avoid_workers) absl::StrAppend(&shape, "!", worker_id);
    return shape;
  };
  std::set<std::pair<int64_t, int32_t>> taken;  // victims chosen in this pass

  for (const UnplacedRun& candidate : unplaced) {
    if (static_cast<int>(decisions.size()) >= options.max_per_pass) break;
    if (candidate.reason != UnplacedReason::kWaitingForResources &&
        candidate.reason != UnplacedReason::kHoldingReservation) {
      continue;
    }
    auto found = by_id.find(candidate.run_id);
    if (found == by_id.end()) continue;
    const RunRequest& run = *found->second;
    if (run.priority <= lowest_victim_class || !run.Validate().ok()) continue;
    const std::string shape = shape_of(run);
    if (failed_shapes.count(shape) > 0) continue;

    // Resources about to be freed by preemptions in flight: the run waits for them. A run that
    // fits what is free now waits too: a reservation of an earlier run blocks it, not capacity.
    bool waits = false;
    for (const auto& [worker_id, view] : views) {
      if (!LabelsMatch(*view.worker, run) || AvoidsWorker(run, worker_id)) continue;
      if (FitsIn(*view.worker, run, view.free_gpus, view.free_slots)) {
        waits = true;
        break;
      }
      std::set<int> gpus = view.free_gpus;
      gpus.insert(view.soon_free_gpus.begin(), view.soon_free_gpus.end());
      if ((!view.soon_free_gpus.empty() || view.soon_free_slots > 0) &&
          FitsIn(*view.worker, run, gpus, view.free_slots + view.soon_free_slots)) {
        waits = true;
        break;
      }
    }
    if (waits) continue;

    Cost best_cost;
    std::vector<const RunningAttempt*> best_set;
    WorkerView* best_view = nullptr;
    for (auto& [worker_id, attempts] : running_on) {
      WorkerView& view = views[worker_id];
      if (!LabelsMatch(*view.worker, run) || AvoidsWorker(run, worker_id)) continue;
      std::vector<const RunningAttempt*> eligible;
      for (const RunningAttempt* attempt : attempts) {
        if (attempt->priority >= run.priority ||
            taken.count({attempt->run_id, attempt->attempt}) > 0 ||
            now - attempt->last_preempted_at < options.cooldown) {
          continue;
        }
        eligible.push_back(attempt);
      }
      if (eligible.empty()) continue;
      Cost cost;
      std::vector<const RunningAttempt*> set;
      if (!CheapestSet(view, run, eligible, now, &cost, &set)) continue;
      if (best_view == nullptr || cost < best_cost) {
        best_cost = std::move(cost);
        best_set = std::move(set);
        best_view = &view;
      }
    }
    if (best_view == nullptr) {
      failed_shapes.insert(shape);
      continue;
    }

    PreemptionDecision decision;
    decision.preemptor_run_id = run.run_id;
    decision.preemptor_sweep_id = run.sweep_id;
    decision.worker_id = best_view->worker->worker_id;
    const ResourceDemand demand = DemandOf(run);
    decision.cpu_slots = demand.cpu_slots;
    // The victims' GPUs first, then free ones, each in index order.
    std::set<int> victim_gpus;
    int slots_freed = 0;
    std::sort(
        best_set.begin(), best_set.end(),
        [](const RunningAttempt* a, const RunningAttempt* b) { return a->run_id < b->run_id; });
    for (const RunningAttempt* victim : best_set) {
      victim_gpus.insert(victim->gpu_indices.begin(), victim->gpu_indices.end());
      slots_freed += victim->cpu_slots;
      decision.victims.push_back({victim->run_id, victim->attempt, victim->priority});
      taken.insert({victim->run_id, victim->attempt});
    }
    for (const std::set<int>* pool : {&victim_gpus, &best_view->free_gpus}) {
      for (const Gpu& gpu : best_view->worker->gpus) {
        if (static_cast<int>(decision.gpu_indices.size()) >= demand.gpus) break;
        if (pool->count(gpu.index) == 0 || !GpuMatches(gpu, run)) continue;
        if (std::find(decision.gpu_indices.begin(), decision.gpu_indices.end(), gpu.index) !=
            decision.gpu_indices.end()) {
          continue;
        }
        decision.gpu_indices.push_back(gpu.index);
      }
    }
    std::sort(decision.gpu_indices.begin(), decision.gpu_indices.end());
    // Bookkeeping for the runs considered next: the preemptor's free GPUs and slots are taken;
    // what it does not take of its victims becomes "soon free".
    for (int index : decision.gpu_indices) best_view->free_gpus.erase(index);
    for (int index : victim_gpus) {
      if (std::find(decision.gpu_indices.begin(), decision.gpu_indices.end(), index) ==
          decision.gpu_indices.end()) {
        best_view->soon_free_gpus.insert(index);
      }
    }
    const int slots_from_free = std::max(0, demand.cpu_slots - slots_freed);
    best_view->free_slots -= slots_from_free;
    best_view->soon_free_slots += std::max(0, slots_freed - demand.cpu_slots);

    decision.reason = absl::StrCat(PriorityClassName(static_cast<PriorityClass>(run.priority)),
                                   " run ", run.run_id, " (sweep ", run.sweep_id, ") needs ",
                                   DemandText(demand), " on worker ", decision.worker_id);
    decisions.push_back(std::move(decision));
  }
  return decisions;
}

}  // namespace scalelab::scheduler
