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

bool FitsNow(const WorkerState& worker, const RunRequest& run, const ResourceDemand& demand) {
  return worker.cpu_slots_free >= demand.cpu_slots && LabelsMatch(worker, run) &&
         !AvoidsWorker(run, worker.worker_id) &&
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

// True when every GPU and every CPU slot of the worker is free (nothing runs or is held there).
bool IsIdle(const WorkerState& worker) {
  return worker.cpu_slots_free == worker.cpu_slots_total &&
         worker.FreeGpuCount() == static_cast<int>(worker.gpus.size());
}

// How a worker ranks as the home of `ranks` ranks of `demand` each: smaller is better. Best fit
// (fewest free GPUs left, then fewest free CPU slots left: a partly used worker usually wins
// already), then a partly used worker before an idle one (kept whole for gangs), then the
// lowest id. GPUs before slots keeps CPU runs on CPU-only workers while GPU workers have both.
std::tuple<int, int, bool, int64_t> FitKey(const WorkerState& worker, const ResourceDemand& demand,
                                           int ranks) {
  return {worker.FreeGpuCount() - ranks * demand.gpus,
          worker.cpu_slots_free - ranks * demand.cpu_slots, IsIdle(worker), worker.worker_id};
}

// How many ranks of `run` (each needing `demand`) the worker fits: with its free resources now,
// or with its whole inventory (`idle`). Labels and ranks_per_node apply; at most run.ranks.
// Avoided workers are the caller's business.
int RanksFitting(const WorkerState& worker, const RunRequest& run, const ResourceDemand& demand,
                 bool idle) {
  if (!LabelsMatch(worker, run)) return 0;
  const int slots = idle ? worker.cpu_slots_total : worker.cpu_slots_free;
  int ranks = slots / std::max(demand.cpu_slots, 1);
  if (demand.gpus > 0) {
    const int gpus = idle ? TotalMatchingGpus(worker, run) : FreeMatchingGpus(worker, run);
    ranks = std::min(ranks, gpus / demand.gpus);
  }
  if (run.ranks_per_node > 0) ranks = std::min(ranks, run.ranks_per_node);
  return std::min(ranks, run.ranks);
}

// " on a worker labelled pool=a, zone=b" when the run requires labels.
void AppendLabels(const RunRequest& run, std::string& need) {
  if (run.node_labels.empty()) return;
  std::vector<std::string> pairs;
  for (const auto& [key, value] : run.node_labels) pairs.push_back(absl::StrCat(key, "=", value));
  absl::StrAppend(&need, run.ranks > 1 ? " on workers labelled " : " on a worker labelled ",
                  absl::StrJoin(pairs, ", "));
}

// What one rank needs: "4 GPUs of model "H200" with at least 80 GiB" / "2 CPU slots".
std::string DescribeRankNeed(const RunRequest& run, const ResourceDemand& demand) {
  if (demand.gpus == 0) return Plural(demand.cpu_slots, "CPU slot", "CPU slots");
  std::string need = Plural(demand.gpus, "GPU", "GPUs");
  if (run.gpu_model.has_value() && !run.gpu_model->empty()) {
    absl::StrAppend(&need, " of model \"", *run.gpu_model, "\"");
  }
  if (run.min_gpu_memory_bytes.has_value() && *run.min_gpu_memory_bytes > 0) {
    absl::StrAppend(&need, " with at least ", FormatBytes(*run.min_gpu_memory_bytes));
  }
  return need;
}

// "needs 4 GPUs of model "H200" with at least 80 GiB" / "needs 2 CPU slots" / for a gang
// "needs 3 ranks × 4 GPUs with at most 1 rank per node".
std::string DescribeNeed(const RunRequest& run, const ResourceDemand& demand) {
  std::string need = "needs ";
  if (run.ranks > 1) absl::StrAppend(&need, run.ranks, " ranks × ");
  absl::StrAppend(&need, DescribeRankNeed(run, demand));
  if (run.ranks > 1 && run.ranks_per_node > 0) {
    absl::StrAppend(&need, " with at most ", Plural(run.ranks_per_node, "rank", "ranks"),
                    " per node");
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

// The round's workers in best-fit order: (free GPUs, free CPU slots, idle, worker id, index into
// the round's workers), the order of FitKey for one rank. Best fit takes the first worker in this
// order that fits, so a placement looks at the workers with enough free GPUs, fewest first, and
// stops at the first that fits, instead of scanning all of them (5,000 workers x 2,000 runs was
// most of an admission pass). Kept current by Take, or by Refresh after a gang took or held
// resources on a worker directly.
class FitOrder {
 public:
  using Key = std::tuple<int, int, bool, int64_t, size_t>;
  explicit FitOrder(const std::vector<RoundWorker>& workers) {
    keys_.reserve(workers.size());
    for (size_t worker_idx = 0; worker_idx < workers.size(); ++worker_idx) {
      keys_.push_back(KeyOf(workers[worker_idx].state, worker_idx));
      order_.insert(keys_.back());
    }
  }
  static Key KeyOf(const WorkerState& worker, size_t worker_idx) {
    return Key(worker.FreeGpuCount(), worker.cpu_slots_free, IsIdle(worker), worker.worker_id,
               worker_idx);
  }
  // The workers with at least `gpus` free GPUs, in best-fit order.
  std::set<Key>::const_iterator From(int gpus) const {
    return order_.lower_bound(
        Key(gpus, std::numeric_limits<int>::min(), false, std::numeric_limits<int64_t>::min(), 0));
  }
  std::set<Key>::const_iterator end() const { return order_.end(); }
  // Takes resources on workers[worker_idx] and moves it to its new place in the order.
  void Take(std::vector<RoundWorker>& workers, size_t worker_idx,
            const std::vector<int>& gpu_indices, int cpu_slots) {
    scheduler::Take(workers[worker_idx].state, gpu_indices, cpu_slots);
    Refresh(workers, worker_idx);
  }
  // Moves workers[worker_idx] to its place after its free resources changed.
  void Refresh(const std::vector<RoundWorker>& workers, size_t worker_idx) {
    order_.erase(keys_[worker_idx]);
    keys_[worker_idx] = KeyOf(workers[worker_idx].state, worker_idx);
    order_.insert(keys_[worker_idx]);
  }
  // The index of `worker`, an element of `workers`.
  static size_t IndexOf(const std::vector<RoundWorker>& workers, const RoundWorker* worker) {
    return static_cast<size_t>(worker - workers.data());
  }

 private:
  std::vector<Key> keys_;  // by worker index: its key in order_
  std::set<Key> order_;
};

// Places `run` if it fits somewhere now: the best-fit worker (fewest free GPUs left, then fewest
// free CPU slots, then a partly used one before an idle one, then lowest id), lowest-indexed GPUs.
bool TryPlace(std::vector<RoundWorker>& workers, FitOrder& fit_order, const RunRequest& run,
              const ResourceDemand& demand, PlacementResult& result) {
  // A worker with fewer free GPUs than the demand cannot have enough free matching ones.
  size_t best_idx = workers.size();
  for (auto it = fit_order.From(demand.gpus); it != fit_order.end(); ++it) {
    const size_t worker_idx = std::get<4>(*it);
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

// --- gangs -------------------------------------------------------------------------------------

// Whether a gang keeps away from the workers it avoids in this round: only while it could still
// fit the idle cluster without them (else avoiding would make it wait forever).
bool GangAvoids(const std::vector<RoundWorker>& workers, const RunRequest& run,
                const ResourceDemand& demand) {
  if (run.avoid_workers.empty()) return false;
  int room = 0;
  for (const RoundWorker& worker : workers) {
    if (!AvoidsWorker(run, worker.state.worker_id)) {
      room += RanksFitting(worker.state, run, demand, /*idle=*/true);
    }
  }
  return room >= run.ranks;
}

// A worker and how many ranks of a gang it takes (or could take).
struct GangShare {
  RoundWorker* worker = nullptr;
  int ranks = 0;
};

// Splits `ranks` ranks over `candidates` (each with the ranks it fits now) on the fewest workers:
// while no candidate fits every rank left, the one fitting the most takes all it fits; the rest
// goes to the best fit (FitKey) for exactly that many. Empty when the candidates do not suffice.
std::vector<GangShare> SplitGang(std::vector<GangShare> candidates, const ResourceDemand& demand,
                                 int ranks) {
  std::vector<GangShare> chosen;
  int remaining = ranks;
  while (remaining > 0) {
    auto finish = candidates.end();
    for (auto it = candidates.begin(); it != candidates.end(); ++it) {
      if (it->ranks < remaining) continue;
      if (finish == candidates.end() || FitKey(it->worker->state, demand, remaining) <
                                            FitKey(finish->worker->state, demand, remaining)) {
        finish = it;
      }
    }
    if (finish != candidates.end()) {
      chosen.push_back({finish->worker, remaining});
      return chosen;
    }
    auto most = candidates.end();
    for (auto it = candidates.begin(); it != candidates.end(); ++it) {
      if (most == candidates.end() || it->ranks > most->ranks ||
          (it->ranks == most->ranks && FitKey(it->worker->state, demand, it->ranks) <
                                           FitKey(most->worker->state, demand, most->ranks))) {
        most = it;
      }
    }
    if (most == candidates.end() || most->ranks == 0) return {};
    chosen.push_back(*most);
    remaining -= most->ranks;
    candidates.erase(most);
  }
  return chosen;
}

// Places every rank of the gang now, or none: one decision per rank, rank 0 first.
bool TryPlaceGang(std::vector<RoundWorker>& workers, FitOrder& fit_order, const RunRequest& run,
                  const ResourceDemand& demand, bool avoid, PlacementResult& result) {
  std::vector<GangShare> candidates;
  for (RoundWorker& worker : workers) {
    if (avoid && AvoidsWorker(run, worker.state.worker_id)) continue;
    const int fitting = RanksFitting(worker.state, run, demand, /*idle=*/false);
    if (fitting > 0) candidates.push_back({&worker, fitting});
  }
  std::vector<GangShare> chosen = SplitGang(std::move(candidates), demand, run.ranks);
  if (chosen.empty()) return false;
  int rank = 0;
  for (const GangShare& share : chosen) {
    for (int rank_idx = 0; rank_idx < share.ranks; ++rank_idx) {
      PlacementDecision decision;
      decision.run_id = run.run_id;
      decision.worker_id = share.worker->state.worker_id;
      decision.gpu_indices = PickGpus(share.worker->state, run, demand.gpus);
      decision.cpu_slots = demand.cpu_slots;
      decision.rank = rank++;
      fit_order.Take(workers, FitOrder::IndexOf(workers, share.worker), decision.gpu_indices,
                     decision.cpu_slots);
      result.placed.push_back(std::move(decision));
    }
  }
  return true;
}

// Makes a blocked gang hold free resources on the workers it would use: those without a hold
// that fit the most of its ranks now first (then the most when idle, then the lowest id), each
// holding what its share of the ranks needs, as far as it is free. Returns those workers; empty
// (nothing held) when the workers without a hold could not fit the gang even when idle.
std::vector<RoundWorker*> ReserveGang(std::vector<RoundWorker>& workers, FitOrder& fit_order,
                                      const RunRequest& run, const ResourceDemand& demand) {
  std::vector<std::tuple<int, int, int64_t, RoundWorker*>> candidates;  // (-now, -idle, id)
  for (RoundWorker& worker : workers) {
    if (worker.held_for_run != 0) continue;
    const int idle = RanksFitting(worker.state, run, demand, /*idle=*/true);
    if (idle == 0) continue;
    candidates.emplace_back(-RanksFitting(worker.state, run, demand, /*idle=*/false), -idle,
                            worker.state.worker_id, &worker);
  }
  std::sort(candidates.begin(), candidates.end());
  std::vector<GangShare> shares;
  int remaining = run.ranks;
  for (const auto& [now, idle, worker_id, worker] : candidates) {
    if (remaining == 0) break;
    const int ranks = std::min(-idle, remaining);
    shares.push_back({worker, ranks});
    remaining -= ranks;
  }
  if (remaining > 0) return {};
  std::vector<RoundWorker*> held;
  for (const GangShare& share : shares) {
    RoundWorker& worker = *share.worker;
    worker.held_for_run = run.run_id;
    worker.held_gpu_indices = PickGpus(worker.state, run, share.ranks * demand.gpus);
    worker.held_slots = std::min(worker.state.cpu_slots_free, share.ranks * demand.cpu_slots);
    fit_order.Take(workers, FitOrder::IndexOf(workers, &worker), worker.held_gpu_indices,
                   worker.held_slots);
    held.push_back(&worker);
  }
  return held;
}

// A gang fits the idle cluster (labels and ranks_per_node respected, avoided workers included).
bool GangFitsWhenIdle(const std::vector<RoundWorker>& workers, const RunRequest& run,
                      const ResourceDemand& demand) {
  int room = 0;
  for (const RoundWorker& worker : workers) {
    room += RanksFitting(worker.state, run, demand, /*idle=*/true);
  }
  return room >= run.ranks;
}

// Why a gang fits no idle cluster, e.g. "needs 3 ranks × 4 GPUs with at most 1 rank per node;
// only 2 workers have 4 GPUs".
std::string GangNeverFitsMessage(const std::vector<RoundWorker>& workers, const RunRequest& run,
                                 const ResourceDemand& demand) {
  std::string need = DescribeNeed(run, demand);
  if (std::none_of(workers.begin(), workers.end(),
                   [&](const RoundWorker& worker) { return LabelsMatch(worker.state, run); })) {
    return absl::StrCat(need, ", but no worker has these labels");
  }
  int room = 0;
  int with_room = 0;
  for (const RoundWorker& worker : workers) {
    const int ranks = RanksFitting(worker.state, run, demand, /*idle=*/true);
    room += ranks;
    with_room += ranks > 0 ? 1 : 0;
  }
  const std::string rank_need = DescribeRankNeed(run, demand);
  if (with_room == 0) return absl::StrCat(need, "; no worker has ", rank_need);
  if (run.ranks_per_node == 1) {
    return absl::StrCat(
        need, "; only ",
        with_room == 1 ? "1 worker has " : absl::StrCat(with_room, " workers have "), rank_need);
  }
  return absl::StrCat(need, "; even idle, the workers have room for only ",
                      Plural(room, "rank", "ranks"), " (on ",
                      Plural(with_room, "worker", "workers"), ")");
}

// Why a gang that would fit the idle cluster does not fit now, e.g. "needs 2 ranks × 1 CPU
// slot; room for 1 rank now (on 1 worker)", with a note when resources held for an earlier run
// are what it lacks.
std::string GangWaitingMessage(const std::vector<RoundWorker>& workers, const RunRequest& run,
                               const ResourceDemand& demand, bool avoid) {
  int room = 0;
  int with_room = 0;
  for (const RoundWorker& worker : workers) {
    if (avoid && AvoidsWorker(run, worker.state.worker_id)) continue;
    const int ranks = RanksFitting(worker.state, run, demand, /*idle=*/false);
    room += ranks;
    with_room += ranks > 0 ? 1 : 0;
  }
  std::string message =
      absl::StrCat(DescribeNeed(run, demand), "; room for ", Plural(room, "rank", "ranks"),
                   " now (on ", Plural(with_room, "worker", "workers"), ")");
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
    if (RanksFitting(without_hold, run, demand, false) <=
        RanksFitting(worker.state, run, demand, false)) {
      continue;
    }
    absl::StrAppend(&message, " (worker ", worker.state.worker_id,
                    "'s free resources are held for run ", worker.held_for_run,
                    ", earlier in the queue)");
    break;
  }
  return message;
}

// Everything that decides where a run fits: runs of one shape fit the same workers.
std::string ShapeKey(const RunRequest& run, const ResourceDemand& demand) {
  std::string key =
      absl::StrCat(demand.gpus, "/", demand.cpu_slots, "/", run.ranks, "x", run.ranks_per_node, "/",
                   run.gpu_model.value_or(""), "/", run.min_gpu_memory_bytes.value_or(0));
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
    const ResourceDemand demand = DemandOf(run);
    const bool gang = run.ranks > 1;
    // What the whole run holds: a gang holds its demand once per rank.
    const int run_gpus = demand.gpus * run.ranks;
    const int run_slots = demand.cpu_slots * run.ranks;
    ProjectState& project = projects[run.project_id];
    if (project.gpu_quota > 0 && run_gpus > 0 &&
        project.gpus_in_use + run_gpus > project.gpu_quota) {
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
    const bool avoid = gang && GangAvoids(workers, run, demand);
    if (gang ? TryPlaceGang(workers, fit_order, run, demand, avoid, result)
             : TryPlace(workers, fit_order, run, demand, result)) {
      project.gpus_in_use += run_gpus;
      project.cpu_slots_in_use += run_slots;
      return;
    }

    const bool fits_idle =
        gang ? GangFitsWhenIdle(workers, run, demand)
             : std::any_of(workers.begin(), workers.end(), [&](const RoundWorker& worker) {
                 return FitsWhenIdle(worker.state, run, demand);
               });
    if (!fits_idle) {
      unplaced.reason = UnplacedReason::kNeverFits;
      unplaced.message = gang ? GangNeverFitsMessage(workers, run, demand)
                              : NeverFitsMessage(workers, run, demand);
      failed_shapes[shape] = unplaced;
      result.unplaced.push_back(std::move(unplaced));
      return;
    }
    // Described before reserving, so the message says what is free, not what it now holds.
    unplaced.reason = UnplacedReason::kWaitingForResources;
    unplaced.message = gang ? GangWaitingMessage(workers, run, demand, avoid)
                            : WaitingMessage(workers, run, demand);
    failed_shapes[shape] = unplaced;
    if (reservations_left > 0) {
      std::vector<RoundWorker*> held;
      if (gang) {
        held = ReserveGang(workers, fit_order, run, demand);
      } else if (RoundWorker* one = Reserve(workers, fit_order, run, demand); one != nullptr) {
        held.push_back(one);
      }
      if (!held.empty()) {
        --reservations_left;
        unplaced.reason = UnplacedReason::kHoldingReservation;
        unplaced.reserved_worker_id = held.front()->state.worker_id;
        int held_gpus = 0;
        int held_slots = 0;
        std::vector<int64_t> held_ids;
        for (const RoundWorker* worker : held) {
          held_gpus += static_cast<int>(worker->held_gpu_indices.size());
          held_slots += worker->held_slots;
          held_ids.push_back(worker->state.worker_id);
        }
        absl::StrAppend(&unplaced.message, "; holding ", Plural(held_gpus, "free GPU", "free GPUs"),
                        " and ", Plural(held_slots, "CPU slot", "CPU slots"), " on ",
                        held_ids.size() == 1 ? "worker " : "workers ",
                        absl::StrJoin(held_ids, ", "), " until it fits");
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
  // A gang's ranks are consecutive: a run is "elsewhere" when none of its ranks is here.
  for (size_t first = 0; first < round->placed.size();) {
    size_t end = first + 1;
    while (end < round->placed.size() && round->placed[end].run_id == round->placed[first].run_id) {
      ++end;
    }
    std::vector<int64_t> elsewhere_ids;
    bool here = false;
    for (size_t decision_idx = first; decision_idx < end; ++decision_idx) {
      PlacementDecision& decision = round->placed[decision_idx];
      if (decision.worker_id == worker_id) {
        here = true;
        mine.placed.push_back(std::move(decision));
      } else if (std::find(elsewhere_ids.begin(), elsewhere_ids.end(), decision.worker_id) ==
                 elsewhere_ids.end()) {
        elsewhere_ids.push_back(decision.worker_id);
      }
    }
    if (!here) {
      UnplacedRun elsewhere;
      elsewhere.run_id = round->placed[first].run_id;
      elsewhere.reason = UnplacedReason::kPlacedElsewhere;
      elsewhere.message =
          absl::StrCat("placed on ", elsewhere_ids.size() == 1 ? "worker " : "workers ",
                       absl::StrJoin(elsewhere_ids, ", "), " in this round");
      mine.unplaced.push_back(std::move(elsewhere));
    }
    first = end;
  }
  for (UnplacedRun& unplaced : round->unplaced) mine.unplaced.push_back(std::move(unplaced));
  return mine;
}

}  // namespace scalelab::scheduler
