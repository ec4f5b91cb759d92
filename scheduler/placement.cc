#include "scheduler/placement.h"

#include <algorithm>
#include <cassert>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <queue>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace scalelab::scheduler {
namespace {

// A worker during one round. `state` starts as the snapshot's copy; a GPU or slot granted or
// held in this round is marked taken there, so nothing is handed out twice.
struct RoundWorker {
  WorkerState state;
  int64_t held_for_run = 0;  // the run holding resources here (0 = none)
  std::vector<int> held_gpu_indices;
  int held_slots = 0;
};

int FreeMatchingGpus(const WorkerState& worker, const RunRequest& run) {
  return static_cast<int>(
      std::count_if(worker.gpus.begin(), worker.gpus.end(),
                    [&](const Gpu& gpu) { return gpu.free && GpuMatches(gpu, run); }));
}

int TotalMatchingGpus(const WorkerState& worker, const RunRequest& run) {
  return static_cast<int>(std::count_if(worker.gpus.begin(), worker.gpus.end(),
                                        [&](const Gpu& gpu) { return GpuMatches(gpu, run); }));
}

bool Avoids(const RunRequest& run, int64_t worker_id) {
  return std::find(run.avoid_workers.begin(), run.avoid_workers.end(), worker_id) !=
         run.avoid_workers.end();
}

bool FitsNow(const WorkerState& worker, const RunRequest& run, const ResourceDemand& demand) {
  return worker.cpu_slots_free >= demand.cpu_slots && LabelsMatch(worker, run) &&
         !Avoids(run, worker.worker_id) &&
         (demand.gpus == 0 || FreeMatchingGpus(worker, run) >= demand.gpus);
}

bool FitsWhenIdle(const WorkerState& worker, const RunRequest& run, const ResourceDemand& demand) {
  return worker.cpu_slots_total >= demand.cpu_slots && LabelsMatch(worker, run) &&
         (demand.gpus == 0 || TotalMatchingGpus(worker, run) >= demand.gpus);
}

// The lowest-indexed free matching GPUs, at most `count` of them, ascending.
std::vector<int> PickGpus(const WorkerState& worker, const RunRequest& run, int count) {
  std::vector<int> indices;
  for (const Gpu& gpu : worker.gpus) {
    if (gpu.free && GpuMatches(gpu, run)) indices.push_back(gpu.index);
  }
  std::sort(indices.begin(), indices.end());
  if (static_cast<int>(indices.size()) > count) indices.resize(count);
  return indices;
}

void Take(WorkerState& worker, const std::vector<int>& gpu_indices, int cpu_slots) {
  [[maybe_unused]] absl::Status taken = MarkHeld(worker, gpu_indices, cpu_slots);
  assert(taken.ok() && "only resources just found free in this round are taken");
}

std::string Plural(int count, absl::string_view one, absl::string_view many) {
  return absl::StrCat(count, " ", count == 1 ? one : many);
}

// " on a worker labelled pool=a, zone=b" when the run requires labels.
void AppendLabels(const RunRequest& run, std::string& need) {
  if (run.node_labels.empty()) return;
  std::vector<std::string> pairs;
  for (const auto& [key, value] : run.node_labels) pairs.push_back(absl::StrCat(key, "=", value));
  absl::StrAppend(&need, " on a worker labelled ", absl::StrJoin(pairs, ", "));
}

// "needs 4 GPUs of model "H200" with at least 80 GiB" / "needs 2 CPU slots".
std::string DescribeNeed(const RunRequest& run, const ResourceDemand& demand) {
  if (demand.gpus == 0) {
    std::string need = absl::StrCat("needs ", Plural(demand.cpu_slots, "CPU slot", "CPU slots"));
    AppendLabels(run, need);
    return need;
  }
  std::string need = absl::StrCat("needs ", Plural(demand.gpus, "GPU", "GPUs"));
  if (run.gpu_model.has_value() && !run.gpu_model->empty()) {
    absl::StrAppend(&need, " of model \"", *run.gpu_model, "\"");
  }
  if (run.min_gpu_memory_bytes.has_value() && *run.min_gpu_memory_bytes > 0) {
    absl::StrAppend(&need, " with at least ", FormatBytes(*run.min_gpu_memory_bytes));
  }
  AppendLabels(run, need);
  return need;
}

// Why a run fits no idle worker, e.g. "needs 16 GPUs, but no worker has that many (the most on
// one worker is 8)".
std::string NeverFitsMessage(const std::vector<RoundWorker>& workers, const RunRequest& run,
                             const ResourceDemand& demand) {
  std::string need = DescribeNeed(run, demand);
  if (std::none_of(workers.begin(), workers.end(),
                   [&](const RoundWorker& worker) { return LabelsMatch(worker.state, run); })) {
    return absl::StrCat(need, ", but no worker has these labels");
  }
  if (demand.gpus == 0) {
    int most = 0;
    for (const RoundWorker& worker : workers) most = std::max(most, worker.state.cpu_slots_total);
    return absl::StrCat(need, ", but no worker has that many (the most on one worker is ", most,
                        ")");
  }
  int most = 0;
  for (const RoundWorker& worker : workers) {
    most = std::max(most, TotalMatchingGpus(worker.state, run));
  }
  if (most == 0) return absl::StrCat(need, ", but no worker has such a GPU");
  if (most < demand.gpus) {
    return absl::StrCat(need, ", but no worker has that many (the most on one worker is ", most,
                        ")");
  }
  return absl::StrCat(need, " and a CPU slot, but the workers with enough GPUs have no CPU slots");
}

// Why a run that would fit an idle worker does not fit now, e.g. "needs 4 GPUs, the most free
// on any worker is 2", with a note when resources held for an earlier run are what it lacks.
std::string WaitingMessage(const std::vector<RoundWorker>& workers, const RunRequest& run,
                           const ResourceDemand& demand) {
  std::string need = DescribeNeed(run, demand);
  std::string message;
  if (demand.gpus == 0) {
    int most = 0;
    for (const RoundWorker& worker : workers) most = std::max(most, worker.state.cpu_slots_free);
    message = absl::StrCat(need, ", the most free on any worker is ", most);
  } else {
    int most = 0;
    for (const RoundWorker& worker : workers) {
      most = std::max(most, FreeMatchingGpus(worker.state, run));
    }
    if (most < demand.gpus) {
      message = absl::StrCat(need, ", the most free on any worker is ", most);
    } else {
      message =
          absl::StrCat(need, " and a CPU slot; the workers with ",
                       Plural(demand.gpus, "free GPU", "free GPUs"), " have no free CPU slot");
    }
  }
  for (const RoundWorker& worker : workers) {
    if (worker.held_for_run == 0 || worker.held_for_run == run.run_id) continue;
    WorkerState without_hold = worker.state;
    without_hold.cpu_slots_free += worker.held_slots;
    for (Gpu& gpu : without_hold.gpus) {
      if (std::find(worker.held_gpu_indices.begin(), worker.held_gpu_indices.end(), gpu.index) !=
          worker.held_gpu_indices.end()) {
        gpu.free = true;
      }
    }
    if (!FitsNow(without_hold, run, demand)) continue;
    absl::StrAppend(&message, " (worker ", worker.state.worker_id,
                    "'s free resources are held for run ", worker.held_for_run,
                    ", earlier in the queue)");
    break;
  }
  return message;
}

absl::Status ValidateSnapshot(const ClusterSnapshot& snapshot) {
  std::set<int64_t> worker_ids;
  for (const WorkerState& worker : snapshot.workers) {
    if (absl::Status valid = worker.Validate(); !valid.ok()) return valid;
    if (!worker_ids.insert(worker.worker_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot: worker ", worker.worker_id, " appears twice"));
    }
  }
  std::set<int64_t> run_ids;
  for (const RunRequest& run : snapshot.pending) {
    if (!run_ids.insert(run.run_id).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("snapshot: run ", run.run_id, " appears twice in the pending queue"));
    }
  }
  return absl::OkStatus();
}

// The round's workers in best-fit order: (free GPUs, free CPU slots, worker id, index into the
// round's workers). Best fit takes the first worker in this order that fits, so a placement
// looks at the workers with enough free GPUs, fewest first, and stops at the first that fits,
// instead of scanning all of them (5,000 workers x 2,000 runs was most of an admission pass).
// Kept current by Take (every change of a worker's free resources in a round goes through it).
class FitOrder {
 public:
  using Key = std::tuple<int, int, int64_t, size_t>;
  explicit FitOrder(const std::vector<RoundWorker>& workers) {
    for (size_t worker_idx = 0; worker_idx < workers.size(); ++worker_idx) {
      order_.insert(KeyOf(workers[worker_idx].state, worker_idx));
    }
  }
  static Key KeyOf(const WorkerState& worker, size_t worker_idx) {
    return Key(worker.FreeGpuCount(), worker.cpu_slots_free, worker.worker_id, worker_idx);
  }
  // The workers with at least `gpus` free GPUs, in best-fit order.
  std::set<Key>::const_iterator From(int gpus) const {
    return order_.lower_bound(
        Key(gpus, std::numeric_limits<int>::min(), std::numeric_limits<int64_t>::min(), 0));
  }
  std::set<Key>::const_iterator end() const { return order_.end(); }
  // Takes resources on workers[worker_idx] and moves it to its new place in the order.
  void Take(std::vector<RoundWorker>& workers, size_t worker_idx,
            const std::vector<int>& gpu_indices, int cpu_slots) {
    WorkerState& worker = workers[worker_idx].state;
    order_.erase(KeyOf(worker, worker_idx));
    scheduler::Take(worker, gpu_indices, cpu_slots);
    order_.insert(KeyOf(worker, worker_idx));
  }

 private:
  std::set<Key> order_;
};

// Places `run` if it fits somewhere now: the best-fit worker (fewest free GPUs left, then fewest
// free CPU slots, then lowest id), lowest-indexed GPUs.
bool TryPlace(std::vector<RoundWorker>& workers, FitOrder& fit_order, const RunRequest& run,
              const ResourceDemand& demand, PlacementResult& result) {
  // A worker with fewer free GPUs than the demand cannot have enough free matching ones.
  size_t best_idx = workers.size();
  for (auto it = fit_order.From(demand.gpus); it != fit_order.end(); ++it) {
    const size_t worker_idx = std::get<3>(*it);
    if (FitsNow(workers[worker_idx].state, run, demand)) {
      best_idx = worker_idx;
      break;
    }
  }
  if (best_idx == workers.size()) return false;
  RoundWorker* best = &workers[best_idx];
  PlacementDecision decision;
  decision.run_id = run.run_id;
  decision.worker_id = best->state.worker_id;
  decision.gpu_indices = PickGpus(best->state, run, demand.gpus);
  decision.cpu_slots = demand.cpu_slots;
  fit_order.Take(workers, best_idx, decision.gpu_indices, decision.cpu_slots);
  result.placed.push_back(std::move(decision));
  return true;
}

// Makes `run` hold the free resources it needs on the worker closest to fitting it. Returns
// that worker, or nullptr when no worker without a hold could ever fit it.
RoundWorker* Reserve(std::vector<RoundWorker>& workers, FitOrder& fit_order, const RunRequest& run,
                     const ResourceDemand& demand) {
  RoundWorker* best = nullptr;
  std::tuple<int, int, int64_t> best_key;
  for (RoundWorker& worker : workers) {
    if (worker.held_for_run != 0 || !FitsWhenIdle(worker.state, run, demand)) continue;
    // Larger is closer; the id is negated so that ties go to the lowest id.
    std::tuple<int, int, int64_t> key(std::min(FreeMatchingGpus(worker.state, run), demand.gpus),
                                      std::min(worker.state.cpu_slots_free, demand.cpu_slots),
                                      -worker.state.worker_id);
    if (best == nullptr || key > best_key) {
      best = &worker;
      best_key = key;
    }
  }
  if (best == nullptr) return nullptr;
  best->held_for_run = run.run_id;
  best->held_gpu_indices = PickGpus(best->state, run, std::get<0>(best_key));
  best->held_slots = std::get<1>(best_key);
  fit_order.Take(workers, static_cast<size_t>(best - workers.data()), best->held_gpu_indices,
                 best->held_slots);
  return best;
}

// Everything that decides where a run fits: runs of one shape fit the same workers.
std::string ShapeKey(const RunRequest& run, const ResourceDemand& demand) {
  std::string key =
      absl::StrCat(demand.gpus, "/", demand.cpu_slots, "/", run.gpu_model.value_or(""), "/",
                   run.min_gpu_memory_bytes.value_or(0));
  for (const auto& [label, value] : run.node_labels) absl::StrAppend(&key, "/", label, "=", value);
  if (!run.avoid_workers.empty())
    absl::StrAppend(&key, "/avoid=", absl::StrJoin(run.avoid_workers, ","));
  return key;
}

}  // namespace

double DominantShare(const ProjectState& project, int total_gpus, int total_cpu_slots) {
  double gpu_share = total_gpus > 0 ? static_cast<double>(project.gpus_in_use) / total_gpus : 0;
  double slot_share =
      total_cpu_slots > 0 ? static_cast<double>(project.cpu_slots_in_use) / total_cpu_slots : 0;
  double weight = project.weight > 0 ? project.weight : 1.0;
  return std::max(gpu_share, slot_share) / weight;
}

absl::Status PlacementOptions::Validate() const {
  if (max_reservations < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_reservations: expected >= 0, got ", max_reservations));
  }
  return absl::OkStatus();
}

const char* UnplacedReasonName(UnplacedReason reason) {
  switch (reason) {
    case UnplacedReason::kInvalidRequest:
      return "INVALID_REQUEST";
    case UnplacedReason::kNoWorkers:
      return "NO_WORKERS";
    case UnplacedReason::kNeverFits:
      return "NEVER_FITS";
    case UnplacedReason::kWaitingForResources:
      return "WAITING_FOR_RESOURCES";
    case UnplacedReason::kHoldingReservation:
      return "HOLDING_RESERVATION";
    case UnplacedReason::kPlacedElsewhere:
      return "PLACED_ELSEWHERE";
    case UnplacedReason::kQuota:
      return "QUOTA";
  }
  return "UNKNOWN";
}

absl::StatusOr<PlacementResult> Place(const ClusterSnapshot& snapshot,
                                      const PlacementOptions& options) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  if (absl::Status valid = ValidateSnapshot(snapshot); !valid.ok()) return valid;

  std::vector<RoundWorker> workers;
  workers.reserve(snapshot.workers.size());
  int total_gpus = 0;
  int total_slots = 0;
  for (const WorkerState& worker : snapshot.workers) {
    RoundWorker round_worker;
    round_worker.state = worker;
    total_gpus += static_cast<int>(worker.gpus.size());
    total_slots += worker.cpu_slots_total;
    workers.push_back(std::move(round_worker));
  }

  // Usage per project, starting from what its runs hold and growing with this round's grants.
  std::map<int64_t, ProjectState> projects = snapshot.projects;
  auto share_of = [&](int64_t project_id) {
    const ProjectState& project = projects[project_id];
    return DominantShare(project, total_gpus, total_slots);
  };

  // Runs by class (highest first), then by project, each project's queue in position order.
  std::map<int, std::map<int64_t, std::vector<size_t>>, std::greater<int>> classes;
  {
    std::vector<size_t> order(snapshot.pending.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const RunRequest& run_a = snapshot.pending[a];
      const RunRequest& run_b = snapshot.pending[b];
      return std::make_tuple(run_a.position, run_a.run_id) <
             std::make_tuple(run_b.position, run_b.run_id);
    });
    for (size_t run_idx : order) {
      const RunRequest& run = snapshot.pending[run_idx];
      classes[run.priority][run.project_id].push_back(run_idx);
    }
  }

  PlacementResult result;
  FitOrder fit_order(workers);
  int reservations_left = options.max_reservations;
  // Resources only shrink during a round, so a shape that failed once fails again: its verdict
  // is reused instead of scanning every worker for each of 100,000 identical runs.
  std::map<std::string, UnplacedRun> failed_shapes;

  result.considered.reserve(snapshot.pending.size());
  auto consider = [&](const RunRequest& run) {
    result.considered.push_back(run.run_id);
    UnplacedRun unplaced;
    unplaced.run_id = run.run_id;
    if (absl::Status valid = run.Validate(); !valid.ok()) {
      unplaced.reason = UnplacedReason::kInvalidRequest;
      unplaced.message = std::string(valid.message());
      result.unplaced.push_back(std::move(unplaced));
      return;
    }
    if (workers.empty()) {
      unplaced.reason = UnplacedReason::kNoWorkers;
      unplaced.message = "no workers are registered";
      result.unplaced.push_back(std::move(unplaced));
      return;
    }
    if (run.ranks > 1) {
      // Gang placement (all ranks at once, per-rank leases, a rendezvous) is not built yet;
      // placing one rank would start a trainer that waits for peers that never come.
      unplaced.reason = UnplacedReason::kNeverFits;
      unplaced.message = absl::StrCat("asks for ", run.ranks,
                                      " ranks; gangs (resources.ranks > 1) are not placed yet");
      result.unplaced.push_back(std::move(unplaced));
      return;
    }
    ResourceDemand demand = DemandOf(run);
    ProjectState& project = projects[run.project_id];
    if (project.gpu_quota > 0 && demand.gpus > 0 &&
        project.gpus_in_use + demand.gpus > project.gpu_quota) {
      unplaced.reason = UnplacedReason::kQuota;
      unplaced.message =
          absl::StrCat(DescribeNeed(run, demand), ", but project ",
                       project.name.empty() ? absl::StrCat(run.project_id) : project.name, " uses ",
                       project.gpus_in_use, " of its quota of ", project.gpu_quota, " GPUs");
      result.unplaced.push_back(std::move(unplaced));
      return;
    }
    const std::string shape = ShapeKey(run, demand);
    if (auto failed = failed_shapes.find(shape); failed != failed_shapes.end()) {
      unplaced.reason = failed->second.reason;
      unplaced.message = failed->second.message;
      result.unplaced.push_back(std::move(unplaced));
      return;
    }
    if (TryPlace(workers, fit_order, run, demand, result)) {
      project.gpus_in_use += demand.gpus;
      project.cpu_slots_in_use += demand.cpu_slots;
      return;
    }

    bool fits_some_idle_worker = std::any_of(
        workers.begin(), workers.end(),
        [&](const RoundWorker& worker) { return FitsWhenIdle(worker.state, run, demand); });
    if (!fits_some_idle_worker) {
      unplaced.reason = UnplacedReason::kNeverFits;
      unplaced.message = NeverFitsMessage(workers, run, demand);
      failed_shapes[shape] = unplaced;
      result.unplaced.push_back(std::move(unplaced));
      return;
    }
    // Described before reserving, so the message says what is free, not what it now holds.
    unplaced.reason = UnplacedReason::kWaitingForResources;
    unplaced.message = WaitingMessage(workers, run, demand);
    failed_shapes[shape] = unplaced;
    if (reservations_left > 0) {
      if (RoundWorker* held = Reserve(workers, fit_order, run, demand); held != nullptr) {
        --reservations_left;
        unplaced.reason = UnplacedReason::kHoldingReservation;
        unplaced.reserved_worker_id = held->state.worker_id;
        absl::StrAppend(
            &unplaced.message, "; holding ",
            Plural(static_cast<int>(held->held_gpu_indices.size()), "free GPU", "free GPUs"),
            " and ", Plural(held->held_slots, "CPU slot", "CPU slots"), " on worker ",
            held->state.worker_id, " until it fits");
      }
    }
    result.unplaced.push_back(std::move(unplaced));
  };

  for (auto& [priority, by_project] : classes) {
    // Weighted fair share within the class: the project with the smallest dominant share
    // (usage / weight) goes next, ties by its head's queue position. A heap of
    // (share, head position, project id); a project's key is recomputed after each of its runs.
    using Key = std::tuple<double, int64_t, int64_t>;
    std::priority_queue<Key, std::vector<Key>, std::greater<Key>> heap;
    std::map<int64_t, size_t> next_of;  // project id -> index into its queue
    for (auto& [project_id, queue] : by_project) {
      next_of[project_id] = 0;
      heap.emplace(share_of(project_id), snapshot.pending[queue.front()].position, project_id);
    }
    while (!heap.empty()) {
      const int64_t project_id = std::get<2>(heap.top());
      heap.pop();
      const std::vector<size_t>& queue = by_project[project_id];
      size_t& next = next_of[project_id];
      consider(snapshot.pending[queue[next]]);
      if (++next < queue.size()) {
        heap.emplace(share_of(project_id), snapshot.pending[queue[next]].position, project_id);
      }
    }
  }
  return result;
}

absl::StatusOr<PlacementResult> PlaceOnWorker(const ClusterSnapshot& snapshot, int64_t worker_id,
                                              const PlacementOptions& options) {
  bool known =
      std::any_of(snapshot.workers.begin(), snapshot.workers.end(),
                  [&](const WorkerState& worker) { return worker.worker_id == worker_id; });
  if (!known) {
    return absl::FailedPreconditionError(absl::StrCat(
        "worker ", worker_id, " is not registered or was declared lost; register again"));
  }
  absl::StatusOr<PlacementResult> round = Place(snapshot, options);
  if (!round.ok()) return round;
  PlacementResult mine;
  for (PlacementDecision& decision : round->placed) {
    if (decision.worker_id == worker_id) {
      mine.placed.push_back(std::move(decision));
      continue;
    }
    UnplacedRun elsewhere;
    elsewhere.run_id = decision.run_id;
    elsewhere.reason = UnplacedReason::kPlacedElsewhere;
    elsewhere.message = absl::StrCat("placed on worker ", decision.worker_id, " in this round");
    mine.unplaced.push_back(std::move(elsewhere));
  }
  for (UnplacedRun& unplaced : round->unplaced) mine.unplaced.push_back(std::move(unplaced));
  return mine;
}

}  // namespace scalelab::scheduler
