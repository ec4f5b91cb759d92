#include "scheduler/placement.h"

#include <algorithm>
#include <cassert>
#include <numeric>
#include <set>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"

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

bool FitsNow(const WorkerState& worker, const RunRequest& run, const ResourceDemand& demand) {
  return worker.cpu_slots_free >= demand.cpu_slots &&
         (demand.gpus == 0 || FreeMatchingGpus(worker, run) >= demand.gpus);
}

bool FitsWhenIdle(const WorkerState& worker, const RunRequest& run, const ResourceDemand& demand) {
  return worker.cpu_slots_total >= demand.cpu_slots &&
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

// "needs 4 GPUs of model "H200" with at least 80 GiB" / "needs 2 CPU slots".
std::string DescribeNeed(const RunRequest& run, const ResourceDemand& demand) {
  if (demand.gpus == 0)
    return absl::StrCat("needs ", Plural(demand.cpu_slots, "CPU slot", "CPU slots"));
  std::string need = absl::StrCat("needs ", Plural(demand.gpus, "GPU", "GPUs"));
  if (run.gpu_model.has_value() && !run.gpu_model->empty()) {
    absl::StrAppend(&need, " of model \"", *run.gpu_model, "\"");
  }
  if (run.min_gpu_memory_bytes.has_value() && *run.min_gpu_memory_bytes > 0) {
    absl::StrAppend(&need, " with at least ", FormatBytes(*run.min_gpu_memory_bytes));
  }
  return need;
}

// Why a run fits no idle worker, e.g. "needs 16 GPUs, but no worker has that many (the most on
// one worker is 8)".
std::string NeverFitsMessage(const std::vector<RoundWorker>& workers, const RunRequest& run,
                             const ResourceDemand& demand) {
  std::string need = DescribeNeed(run, demand);
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

// Places `run` if it fits somewhere now: the best-fit worker, lowest-indexed GPUs.
bool TryPlace(std::vector<RoundWorker>& workers, const RunRequest& run,
              const ResourceDemand& demand, PlacementResult& result) {
  RoundWorker* best = nullptr;
  std::tuple<int, int, int64_t> best_key;
  for (RoundWorker& worker : workers) {
    if (!FitsNow(worker.state, run, demand)) continue;
    std::tuple<int, int, int64_t> key(worker.state.FreeGpuCount() - demand.gpus,
                                      worker.state.cpu_slots_free - demand.cpu_slots,
                                      worker.state.worker_id);
    if (best == nullptr || key < best_key) {
      best = &worker;
      best_key = key;
    }
  }
  if (best == nullptr) return false;
  PlacementDecision decision;
  decision.run_id = run.run_id;
  decision.worker_id = best->state.worker_id;
  decision.gpu_indices = PickGpus(best->state, run, demand.gpus);
  decision.cpu_slots = demand.cpu_slots;
  Take(best->state, decision.gpu_indices, decision.cpu_slots);
  result.placed.push_back(std::move(decision));
  return true;
}

// Makes `run` hold the free resources it needs on the worker closest to fitting it. Returns
// that worker, or nullptr when no worker without a hold could ever fit it.
RoundWorker* Reserve(std::vector<RoundWorker>& workers, const RunRequest& run,
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
  Take(best->state, best->held_gpu_indices, best->held_slots);
  return best;
}

}  // namespace

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
  }
  return "UNKNOWN";
}

absl::StatusOr<PlacementResult> Place(const ClusterSnapshot& snapshot,
                                      const PlacementOptions& options) {
  if (absl::Status valid = options.Validate(); !valid.ok()) return valid;
  if (absl::Status valid = ValidateSnapshot(snapshot); !valid.ok()) return valid;

  std::vector<RoundWorker> workers;
  workers.reserve(snapshot.workers.size());
  for (const WorkerState& worker : snapshot.workers) {
    RoundWorker round_worker;
    round_worker.state = worker;
    workers.push_back(std::move(round_worker));
  }

  // The caller's order is expected to be queue order already; sorting makes the contract the
  // fields, not the vector, and costs nothing next to the scan below.
  std::vector<size_t> order(snapshot.pending.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const RunRequest& run_a = snapshot.pending[a];
    const RunRequest& run_b = snapshot.pending[b];
    return std::make_tuple(-run_a.priority, run_a.position, run_a.run_id) <
           std::make_tuple(-run_b.priority, run_b.position, run_b.run_id);
  });

  PlacementResult result;
  int reservations_left = options.max_reservations;
  for (size_t run_idx : order) {
    const RunRequest& run = snapshot.pending[run_idx];
    UnplacedRun unplaced;
    unplaced.run_id = run.run_id;
    if (absl::Status valid = run.Validate(); !valid.ok()) {
      unplaced.reason = UnplacedReason::kInvalidRequest;
      unplaced.message = std::string(valid.message());
      result.unplaced.push_back(std::move(unplaced));
      continue;
    }
    if (workers.empty()) {
      unplaced.reason = UnplacedReason::kNoWorkers;
      unplaced.message = "no workers are registered";
      result.unplaced.push_back(std::move(unplaced));
      continue;
    }
    ResourceDemand demand = DemandOf(run);
    if (TryPlace(workers, run, demand, result)) continue;

    bool fits_some_idle_worker = std::any_of(
        workers.begin(), workers.end(),
        [&](const RoundWorker& worker) { return FitsWhenIdle(worker.state, run, demand); });
    if (!fits_some_idle_worker) {
      unplaced.reason = UnplacedReason::kNeverFits;
      unplaced.message = NeverFitsMessage(workers, run, demand);
      result.unplaced.push_back(std::move(unplaced));
      continue;
    }
    // Described before reserving, so the message says what is free, not what it now holds.
    unplaced.reason = UnplacedReason::kWaitingForResources;
    unplaced.message = WaitingMessage(workers, run, demand);
    if (reservations_left > 0) {
      if (RoundWorker* held = Reserve(workers, run, demand); held != nullptr) {
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
