#include "scheduler/placement.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/resources.h"
#include "tests/scheduler/in_memory_placement_state.h"

namespace scalelab::scheduler {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

WorkerState GpuWorker(int64_t worker_id, int gpu_count, int busy_gpus = 0,
                      const std::string& model = "NVIDIA H200", int64_t memory_bytes = 141 * kGiB,
                      int cpu_slots = 16) {
  WorkerState worker;
  worker.worker_id = worker_id;
  worker.name = "gpu-" + std::to_string(worker_id);
  worker.cpu_slots_total = cpu_slots;
  worker.cpu_slots_free = cpu_slots - busy_gpus;
  for (int gpu_idx = 0; gpu_idx < gpu_count; ++gpu_idx) {
    Gpu gpu;
    gpu.index = gpu_idx;
    gpu.model = model;
    gpu.memory_bytes = memory_bytes;
    gpu.free = gpu_idx >= busy_gpus;
    worker.gpus.push_back(gpu);
  }
  return worker;
}

WorkerState CpuWorker(int64_t worker_id, int cpu_slots, int busy_slots = 0) {
  WorkerState worker;
  worker.worker_id = worker_id;
  worker.name = "cpu-" + std::to_string(worker_id);
  worker.cpu_slots_total = cpu_slots;
  worker.cpu_slots_free = cpu_slots - busy_slots;
  return worker;
}

// Queue position = run id, so ids read in queue order.
RunRequest GpuRun(int64_t run_id, int gpus) {
  RunRequest run;
  run.run_id = run_id;
  run.sweep_id = 1;
  run.position = run_id;
  run.gpus = gpus;
  return run;
}

RunRequest CpuRun(int64_t run_id, int cpus = 1) {
  RunRequest run = GpuRun(run_id, 0);
  run.cpus = cpus;
  return run;
}

PlacementResult MustPlace(const ClusterSnapshot& snapshot, PlacementOptions options = {}) {
  absl::StatusOr<PlacementResult> result = Place(snapshot, options);
  REQUIRE(result.ok());
  return *std::move(result);
}

std::vector<int64_t> PlacedRunIds(const PlacementResult& result) {
  std::vector<int64_t> ids;
  for (const PlacementDecision& decision : result.placed) ids.push_back(decision.run_id);
  return ids;
}

const PlacementDecision* DecisionFor(const PlacementResult& result, int64_t run_id) {
  for (const PlacementDecision& decision : result.placed) {
    if (decision.run_id == run_id) return &decision;
  }
  return nullptr;
}

const UnplacedRun* UnplacedFor(const PlacementResult& result, int64_t run_id) {
  for (const UnplacedRun& unplaced : result.unplaced) {
    if (unplaced.run_id == run_id) return &unplaced;
  }
  return nullptr;
}

TEST_CASE("A run's demand is its GPUs plus one CPU slot, or its CPU slots with 0 meaning 1",
          "[scheduler][placement]") {
  v1::ResourceSpec spec;
  spec.set_gpus(4);
  spec.set_cpus(8);
  RunRequest gpu_run = RunRequestFromSpec(7, 2, 30, spec);
  CHECK(gpu_run.run_id == 7);
  CHECK(gpu_run.sweep_id == 2);
  CHECK(gpu_run.position == 30);
  CHECK(DemandOf(gpu_run).gpus == 4);
  CHECK(DemandOf(gpu_run).cpu_slots == 1);
  CHECK(DemandOf(CpuRun(1, 0)).cpu_slots == 1);
  CHECK(DemandOf(CpuRun(1, 3)).cpu_slots == 3);
  CHECK(DemandOf(CpuRun(1, 3)).gpus == 0);
}

TEST_CASE("A registered worker starts with every slot and GPU free", "[scheduler][placement]") {
  v1::RegisterRequest request;
  request.set_name("node-a:42");
  request.set_cpu_slots(8);
  for (int gpu_idx = 0; gpu_idx < 2; ++gpu_idx) {
    v1::GpuInfo* gpu = request.add_gpus();
    gpu->set_index(gpu_idx);
    gpu->set_name("NVIDIA H200");
    gpu->set_memory_bytes(141 * kGiB);
  }
  (*request.mutable_labels())["zone"] = "a";
  WorkerState worker = WorkerStateFromRegistration(3, request);
  CHECK(worker.Validate().ok());
  CHECK(worker.cpu_slots_free == 8);
  CHECK(worker.FreeGpuCount() == 2);
  CHECK(worker.gpus[1].model == "NVIDIA H200");
  CHECK(worker.labels.at("zone") == "a");

  REQUIRE(MarkHeld(worker, {1}, 1).ok());
  CHECK(worker.FreeGpuCount() == 1);
  CHECK(worker.cpu_slots_free == 7);
  CHECK(MarkHeld(worker, {0, 1}, 1).code() == absl::StatusCode::kFailedPrecondition);
  CHECK(worker.FreeGpuCount() == 1);  // a refused MarkHeld changes nothing
}

TEST_CASE("A GPU run is placed only on a worker with that many free GPUs",
          "[scheduler][placement]") {
  ClusterSnapshot snapshot;
  snapshot.workers.push_back(GpuWorker(1, 2));                   // too small
  snapshot.workers.push_back(GpuWorker(2, 8, /*busy_gpus=*/5));  // 3 free
  WorkerState no_slot = GpuWorker(3, 4);
  no_slot.cpu_slots_free = 0;  // GPUs free, but no slot for the trainer process
  snapshot.workers.push_back(no_slot);
  snapshot.workers.push_back(GpuWorker(4, 4));
  snapshot.pending.push_back(GpuRun(10, 4));

  PlacementResult result = MustPlace(snapshot);
  REQUIRE(result.placed.size() == 1);
  CHECK(result.placed[0].run_id == 10);
  CHECK(result.placed[0].worker_id == 4);
  CHECK(result.placed[0].gpu_indices == std::vector<int>{0, 1, 2, 3});
  CHECK(result.placed[0].cpu_slots == 1);
  CHECK(result.unplaced.empty());

  snapshot.workers.pop_back();
  result = MustPlace(snapshot);
  CHECK(result.placed.empty());
  REQUIRE(result.unplaced.size() == 1);
  CHECK(result.unplaced[0].reason == UnplacedReason::kHoldingReservation);
}

TEST_CASE("CPU runs fill free slots in queue order and prefer CPU-only workers",
          "[scheduler][placement]") {
  ClusterSnapshot snapshot;
  snapshot.workers.push_back(GpuWorker(1, 8));                    // 16 slots, but GPUs too
  snapshot.workers.push_back(CpuWorker(2, 4, /*busy_slots=*/1));  // 3 free
  for (int64_t run_id = 1; run_id <= 5; ++run_id) snapshot.pending.push_back(CpuRun(run_id));
  // Handed over out of order: the position decides, not the vector.
  std::swap(snapshot.pending[0], snapshot.pending[4]);

  PlacementOptions no_reservation;
  no_reservation.max_reservations = 0;
  PlacementResult result = MustPlace(snapshot, no_reservation);
  CHECK(PlacedRunIds(result) == std::vector<int64_t>{1, 2, 3, 4, 5});
  for (int64_t run_id : {1, 2, 3}) CHECK(DecisionFor(result, run_id)->worker_id == 2);
  for (int64_t run_id : {4, 5}) CHECK(DecisionFor(result, run_id)->worker_id == 1);
  for (const PlacementDecision& decision : result.placed) {
    CHECK(decision.gpu_indices.empty());
    CHECK(decision.cpu_slots == 1);
  }

  // Without the GPU worker the last two wait, and a 2-slot run takes two slots.
  snapshot.workers.erase(snapshot.workers.begin());
  snapshot.pending[1] = CpuRun(2, 2);
  result = MustPlace(snapshot, no_reservation);
  CHECK(PlacedRunIds(result) == std::vector<int64_t>{1, 2});
  CHECK(DecisionFor(result, 2)->cpu_slots == 2);
  REQUIRE(result.unplaced.size() == 3);
  CHECK(result.unplaced[0].run_id == 3);
  CHECK(result.unplaced[0].reason == UnplacedReason::kWaitingForResources);
}

TEST_CASE("Best-fit packing keeps a whole node free for a later 8-GPU run",
          "[scheduler][placement]") {
  InMemoryPlacementState state;
  state.AddWorker(GpuWorker(1, 8));                   // empty node, lowest id
  state.AddWorker(GpuWorker(2, 8, /*busy_gpus=*/4));  // half used
  for (int64_t run_id = 1; run_id <= 3; ++run_id) state.AddPending(GpuRun(run_id, 1));

  absl::StatusOr<ClusterSnapshot> snapshot = state.Snapshot(0);
  REQUIRE(snapshot.ok());
  PlacementResult result = MustPlace(*snapshot);
  REQUIRE(result.placed.size() == 3);
  for (const PlacementDecision& decision : result.placed) CHECK(decision.worker_id == 2);
  CHECK(result.placed[0].gpu_indices == std::vector<int>{4});
  CHECK(result.placed[2].gpu_indices == std::vector<int>{6});
  REQUIRE(state.Commit(result.placed).ok());

  state.AddPending(GpuRun(4, 8));
  snapshot = state.Snapshot(0);
  REQUIRE(snapshot.ok());
  result = MustPlace(*snapshot);
  REQUIRE(result.placed.size() == 1);
  CHECK(result.placed[0].run_id == 4);
  CHECK(result.placed[0].worker_id == 1);
  CHECK(result.placed[0].gpu_indices == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("A GPU or CPU slot is never granted twice in one round", "[scheduler][placement]") {
  std::mt19937 rng(20240611);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int round_idx = 0; round_idx < 300; ++round_idx) {
    ClusterSnapshot snapshot;
    int worker_count = uniform(1, 5);
    for (int64_t worker_id = 1; worker_id <= worker_count; ++worker_id) {
      int gpu_count = uniform(0, 8);
      WorkerState worker = GpuWorker(worker_id, gpu_count, uniform(0, gpu_count),
                                     uniform(0, 1) ? "NVIDIA H200" : "NVIDIA A100",
                                     uniform(0, 1) ? 141 * kGiB : 40 * kGiB, uniform(8, 16));
      snapshot.workers.push_back(worker);
    }
    int run_count = uniform(0, 30);
    for (int64_t run_id = 1; run_id <= run_count; ++run_id) {
      RunRequest run =
          uniform(0, 2) == 0 ? CpuRun(run_id, uniform(0, 3)) : GpuRun(run_id, uniform(1, 8));
      if (uniform(0, 3) == 0) run.gpu_model = "h200";
      if (uniform(0, 3) == 0) run.min_gpu_memory_bytes = 80 * kGiB;
      snapshot.pending.push_back(run);
    }
    PlacementOptions options;
    options.max_reservations = uniform(0, 2);
    PlacementResult result = MustPlace(snapshot, options);
    CHECK(result.placed.size() + result.unplaced.size() == snapshot.pending.size());

    std::set<std::pair<int64_t, int>> granted_gpus;
    std::map<int64_t, int> granted_slots;
    for (const PlacementDecision& decision : result.placed) {
      const RunRequest& run = snapshot.pending[decision.run_id - 1];
      const WorkerState& worker = snapshot.workers[decision.worker_id - 1];
      CHECK(static_cast<int>(decision.gpu_indices.size()) == run.gpus);
      CHECK(decision.cpu_slots == DemandOf(run).cpu_slots);
      granted_slots[decision.worker_id] += decision.cpu_slots;
      for (int gpu_index : decision.gpu_indices) {
        CHECK(granted_gpus.insert({decision.worker_id, gpu_index}).second);
        const Gpu& gpu = worker.gpus[gpu_index];
        CHECK(gpu.free);
        CHECK(GpuMatches(gpu, run));
      }
    }
    for (const auto& [worker_id, slots] : granted_slots) {
      CHECK(slots <= snapshot.workers[worker_id - 1].cpu_slots_free);
    }
  }
}

TEST_CASE("GPU memory and model requirements are respected", "[scheduler][placement]") {
  ClusterSnapshot snapshot;
  snapshot.workers.push_back(GpuWorker(1, 4, 0, "NVIDIA A100-SXM4-40GB", 40 * kGiB));
  snapshot.workers.push_back(GpuWorker(2, 2, 0, "NVIDIA H200", 141 * kGiB));
  WorkerState mixed = GpuWorker(3, 2, 0, "NVIDIA A100-SXM4-40GB", 40 * kGiB);
  mixed.gpus[1].model = "NVIDIA A100-SXM4-80GB";
  mixed.gpus[1].memory_bytes = 80 * kGiB;
  snapshot.workers.push_back(mixed);

  RunRequest big_memory = GpuRun(1, 2);
  big_memory.min_gpu_memory_bytes = 80 * kGiB;
  RunRequest a100 = GpuRun(2, 1);
  a100.gpu_model = "a100-sxm4-40";
  RunRequest one_80g = GpuRun(3, 1);
  one_80g.min_gpu_memory_bytes = 80 * kGiB;
  RunRequest h100 = GpuRun(4, 1);
  h100.gpu_model = "H100";
  snapshot.pending = {big_memory, a100, one_80g, h100};

  PlacementResult result = MustPlace(snapshot);
  REQUIRE(DecisionFor(result, 1) != nullptr);
  CHECK(DecisionFor(result, 1)->worker_id == 2);
  REQUIRE(DecisionFor(result, 2) != nullptr);
  // Best fit counts every free GPU left: worker 3 keeps 1 (its 80 GB one), worker 1 keeps 3.
  CHECK(DecisionFor(result, 2)->worker_id == 3);
  CHECK(DecisionFor(result, 2)->gpu_indices == std::vector<int>{0});
  REQUIRE(DecisionFor(result, 3) != nullptr);
  CHECK(DecisionFor(result, 3)->worker_id == 3);
  CHECK(DecisionFor(result, 3)->gpu_indices == std::vector<int>{1});
  const UnplacedRun* unplaced = UnplacedFor(result, 4);
  REQUIRE(unplaced != nullptr);
  CHECK(unplaced->reason == UnplacedReason::kNeverFits);
  CHECK(unplaced->message == "needs 1 GPU of model \"H100\", but no worker has such a GPU");
}

TEST_CASE("The reason a run is not placed is readable", "[scheduler][placement]") {
  ClusterSnapshot snapshot;
  snapshot.workers.push_back(GpuWorker(1, 8, /*busy_gpus=*/6));
  snapshot.workers.push_back(CpuWorker(2, 4, /*busy_slots=*/3));
  RunRequest invalid = GpuRun(7, -1);
  RunRequest memory = GpuRun(6, 4);
  memory.min_gpu_memory_bytes = 80 * kGiB;
  snapshot.pending = {GpuRun(1, 4), GpuRun(2, 16), CpuRun(3, 12), CpuRun(4, 32),
                      CpuRun(5, 2), memory,        invalid};
  PlacementOptions no_reservation;
  no_reservation.max_reservations = 0;
  PlacementResult result = MustPlace(snapshot, no_reservation);

  REQUIRE(result.placed.size() == 1);  // run 5 goes to the GPU node's free slots
  CHECK(result.placed[0].run_id == 5);
  auto message = [&](int64_t run_id) { return UnplacedFor(result, run_id)->message; };
  auto reason = [&](int64_t run_id) { return UnplacedFor(result, run_id)->reason; };
  CHECK(reason(1) == UnplacedReason::kWaitingForResources);
  CHECK(message(1) == "needs 4 GPUs, the most free on any worker is 2");
  CHECK(reason(2) == UnplacedReason::kNeverFits);
  CHECK(message(2) == "needs 16 GPUs, but no worker has that many (the most on one worker is 8)");
  CHECK(message(3) == "needs 12 CPU slots, the most free on any worker is 10");
  CHECK(reason(4) == UnplacedReason::kNeverFits);
  CHECK(message(4) ==
        "needs 32 CPU slots, but no worker has that many (the most on one worker is 16)");
  CHECK(message(6) == "needs 4 GPUs with at least 80 GiB, the most free on any worker is 2");
  CHECK(reason(7) == UnplacedReason::kInvalidRequest);
  CHECK(message(7) == "run 7: resources.gpus: expected >= 0, got -1");
  CHECK(std::string(UnplacedReasonName(reason(1))) == "WAITING_FOR_RESOURCES");

  // With a reservation (the default), the holder and the runs it blocks both say so.
  snapshot.pending = {GpuRun(1, 4), GpuRun(2, 1)};
  result = MustPlace(snapshot);
  CHECK(reason(1) == UnplacedReason::kHoldingReservation);
  CHECK(UnplacedFor(result, 1)->reserved_worker_id == 1);
  CHECK(message(1) ==
        "needs 4 GPUs, the most free on any worker is 2; holding 2 free GPUs and 1 CPU slot on "
        "worker 1 until it fits");
  CHECK(reason(2) == UnplacedReason::kWaitingForResources);
  CHECK(message(2) ==
        "needs 1 GPU, the most free on any worker is 0 (worker 1's free resources are held for "
        "run 1, earlier in the queue)");

  snapshot.workers.clear();
  result = MustPlace(snapshot);
  CHECK(reason(1) == UnplacedReason::kNoWorkers);
  CHECK(message(1) == "no workers are registered");
}

TEST_CASE("A big run at the head of the queue is not starved by smaller runs behind it",
          "[scheduler][placement]") {
  InMemoryPlacementState state;
  state.AddWorker(GpuWorker(1, 8));
  state.AddWorker(GpuWorker(2, 1));
  // Eight 1-GPU runs fill worker 1 and one lands on worker 2; then an 8-GPU run and more small
  // ones queue behind it.
  for (int64_t run_id = 1; run_id <= 9; ++run_id) state.AddPending(GpuRun(run_id, 1));
  absl::StatusOr<ClusterSnapshot> snapshot = state.Snapshot(0);
  REQUIRE(snapshot.ok());
  PlacementResult result = MustPlace(*snapshot);
  REQUIRE(result.placed.size() == 9);
  REQUIRE(state.Commit(result.placed).ok());
  state.AddPending(GpuRun(10, 8));
  for (int64_t run_id = 11; run_id <= 20; ++run_id) state.AddPending(GpuRun(run_id, 1));

  // Small runs keep finishing; each round the big run holds what worker 1 frees, and worker 2's
  // GPU keeps being backfilled.
  int64_t next_to_finish = 1;
  bool big_placed = false;
  for (int round_idx = 0; round_idx < 12 && !big_placed; ++round_idx) {
    REQUIRE(state.Finish(next_to_finish++).ok());
    snapshot = state.Snapshot(0);
    REQUIRE(snapshot.ok());
    result = MustPlace(*snapshot);
    for (const PlacementDecision& decision : result.placed) {
      if (decision.run_id == 10) {
        big_placed = true;
      } else {
        CHECK(decision.worker_id == 2);  // backfill never touches the held node
      }
    }
    REQUIRE(state.Commit(result.placed).ok());
  }
  CHECK(big_placed);
}

TEST_CASE("Without reservations a small run behind a big one takes the GPU it waits for",
          "[scheduler][placement]") {
  ClusterSnapshot snapshot;
  snapshot.workers.push_back(GpuWorker(1, 8, /*busy_gpus=*/7));
  snapshot.pending = {GpuRun(1, 8), GpuRun(2, 1)};
  PlacementOptions no_reservation;
  no_reservation.max_reservations = 0;
  CHECK(PlacedRunIds(MustPlace(snapshot, no_reservation)) == std::vector<int64_t>{2});
  CHECK(MustPlace(snapshot).placed.empty());
}

TEST_CASE("PlaceOnWorker gives a worker only what fits it", "[scheduler][placement]") {
  InMemoryPlacementState state;
  state.AddWorker(CpuWorker(1, 2));
  state.AddWorker(GpuWorker(2, 2, 0, "NVIDIA H200", 141 * kGiB, /*cpu_slots=*/4));
  state.AddPending(GpuRun(1, 2));
  state.AddPending(CpuRun(2));
  state.AddPending(GpuRun(3, 4));  // fits nowhere
  state.AddPending(CpuRun(4));
  state.AddPending(CpuRun(5));

  absl::StatusOr<ClusterSnapshot> snapshot = state.Snapshot(1);
  REQUIRE(snapshot.ok());
  absl::StatusOr<PlacementResult> cpu_lease = PlaceOnWorker(*snapshot, 1, PlacementOptions());
  REQUIRE(cpu_lease.ok());
  CHECK(PlacedRunIds(*cpu_lease) == std::vector<int64_t>{2, 4});
  for (const PlacementDecision& decision : cpu_lease->placed) CHECK(decision.worker_id == 1);
  CHECK(UnplacedFor(*cpu_lease, 1)->reason == UnplacedReason::kPlacedElsewhere);
  CHECK(UnplacedFor(*cpu_lease, 1)->message == "placed on worker 2 in this round");
  CHECK(UnplacedFor(*cpu_lease, 3)->reason == UnplacedReason::kNeverFits);
  REQUIRE(state.Commit(cpu_lease->placed).ok());
  // The same decisions again are refused, as the store's re-check will refuse a stale lease.
  CHECK(state.Commit(cpu_lease->placed).code() == absl::StatusCode::kAborted);

  snapshot = state.Snapshot(2);
  REQUIRE(snapshot.ok());
  absl::StatusOr<PlacementResult> gpu_lease = PlaceOnWorker(*snapshot, 2, PlacementOptions());
  REQUIRE(gpu_lease.ok());
  REQUIRE(PlacedRunIds(*gpu_lease) == std::vector<int64_t>{1, 5});
  CHECK(gpu_lease->placed[0].gpu_indices == std::vector<int>{0, 1});
  CHECK(gpu_lease->placed[1].gpu_indices.empty());
  REQUIRE(state.Commit(gpu_lease->placed).ok());

  CHECK(PlaceOnWorker(*snapshot, 99, PlacementOptions()).status().code() ==
        absl::StatusCode::kFailedPrecondition);
  CHECK(state.Snapshot(99).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("An inconsistent snapshot is refused with the field and value named",
          "[scheduler][placement]") {
  ClusterSnapshot snapshot;
  WorkerState worker = CpuWorker(1, 2);
  worker.cpu_slots_free = 3;
  snapshot.workers.push_back(worker);
  absl::StatusOr<PlacementResult> result = Place(snapshot, PlacementOptions());
  CHECK(result.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(result.status().message() ==
        "worker 1: cpu_slots_free: expected between 0 and cpu_slots_total (2), got 3");

  snapshot.workers = {CpuWorker(1, 2), CpuWorker(1, 2)};
  CHECK(Place(snapshot, PlacementOptions()).status().code() == absl::StatusCode::kInvalidArgument);

  snapshot.workers = {GpuWorker(1, 2)};
  snapshot.workers[0].gpus[1].index = 0;
  CHECK(Place(snapshot, PlacementOptions()).status().message() ==
        "worker 1: gpus.index: expected each index once, got 0");

  snapshot.workers = {CpuWorker(1, 2)};
  snapshot.pending = {CpuRun(1), CpuRun(1)};
  CHECK(Place(snapshot, PlacementOptions()).status().code() == absl::StatusCode::kInvalidArgument);

  PlacementOptions options;
  options.max_reservations = -1;
  CHECK(Place(ClusterSnapshot(), options).status().message() ==
        "max_reservations: expected >= 0, got -1");
}

// --- gangs (resources.ranks > 1) ---------------------------------------------------------------

RunRequest GpuGang(int64_t run_id, int ranks, int gpus_per_rank, int ranks_per_node = 0) {
  RunRequest run = GpuRun(run_id, gpus_per_rank);
  run.ranks = ranks;
  run.ranks_per_node = ranks_per_node;
  return run;
}

RunRequest CpuGang(int64_t run_id, int ranks, int ranks_per_node = 0) {
  RunRequest run = CpuRun(run_id);
  run.ranks = ranks;
  run.ranks_per_node = ranks_per_node;
  return run;
}

// "worker:rank:gpus" for each decision of `run_id`, in order.
std::vector<std::string> GangLayout(const PlacementResult& result, int64_t run_id) {
  std::vector<std::string> layout;
  for (const PlacementDecision& decision : result.placed) {
    if (decision.run_id != run_id) continue;
    std::string gpus;
    for (int index : decision.gpu_indices)
      gpus += (gpus.empty() ? "" : ",") + std::to_string(index);
    layout.push_back(std::to_string(decision.worker_id) + ":" + std::to_string(decision.rank) +
                     ":" + gpus);
  }
  return layout;
}

TEST_CASE("A gang's ranks and ranks_per_node come from its ResourceSpec and are validated",
          "[scheduler][placement][gang]") {
  v1::ResourceSpec spec;
  spec.set_gpus(4);
  spec.set_ranks(3);
  spec.set_ranks_per_node(1);
  RunRequest gang = RunRequestFromSpec(7, 2, 30, spec);
  CHECK(gang.ranks == 3);
  CHECK(gang.ranks_per_node == 1);
  CHECK(DemandOf(gang).gpus == 4);  // per rank
  spec.set_ranks(0);
  CHECK(RunRequestFromSpec(7, 2, 30, spec).ranks == 1);

  ClusterSnapshot snapshot;
  snapshot.workers = {CpuWorker(1, 4)};
  RunRequest bad = CpuGang(1, 2, /*ranks_per_node=*/-1);
  RunRequest zero = CpuGang(2, 0);
  snapshot.pending = {bad, zero};
  PlacementResult result = MustPlace(snapshot);
  CHECK(result.placed.empty());
  CHECK(UnplacedFor(result, 1)->reason == UnplacedReason::kInvalidRequest);
  CHECK(UnplacedFor(result, 1)->message ==
        "run 1: resources.ranks_per_node: expected >= 0, got -1");
  CHECK(UnplacedFor(result, 2)->message == "run 2: resources.ranks: expected >= 1, got 0");
}

TEST_CASE("A gang that fits one worker goes there whole, best fit, one decision per rank",
          "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {GpuWorker(1, 8), GpuWorker(2, 8, /*busy_gpus=*/4)};
  snapshot.pending = {GpuGang(1, 2, 2)};
  PlacementResult result = MustPlace(snapshot);
  // Worker 2's four free GPUs fit both ranks exactly; the idle worker 1 stays whole.
  CHECK(GangLayout(result, 1) == std::vector<std::string>{"2:0:4,5", "2:1:6,7"});
  for (const PlacementDecision& decision : result.placed) CHECK(decision.cpu_slots == 1);
}

TEST_CASE("A gang too big for one worker spreads over the fewest workers",
          "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {GpuWorker(1, 8, /*busy_gpus=*/4), GpuWorker(2, 8), GpuWorker(3, 8),
                      GpuWorker(4, 8, /*busy_gpus=*/6)};
  snapshot.pending = {GpuGang(1, 3, 4)};
  PlacementResult result = MustPlace(snapshot);
  // Two workers suffice: an idle one takes two ranks, and the last rank fills worker 1's four
  // free GPUs rather than breaking into idle worker 3.
  CHECK(GangLayout(result, 1) ==
        std::vector<std::string>{"2:0:0,1,2,3", "2:1:4,5,6,7", "1:2:4,5,6,7"});
}

TEST_CASE("ranks_per_node caps the ranks a gang puts on one worker",
          "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {GpuWorker(1, 8, /*busy_gpus=*/4), GpuWorker(2, 8), GpuWorker(3, 8)};
  snapshot.pending = {GpuGang(1, 3, 4, /*ranks_per_node=*/1)};
  PlacementResult result = MustPlace(snapshot);
  CHECK(GangLayout(result, 1) ==
        std::vector<std::string>{"1:0:4,5,6,7", "2:1:0,1,2,3", "3:2:0,1,2,3"});

  // Two ranks per node on CPU workers: four ranks need two workers of two free slots each.
  snapshot.workers = {CpuWorker(1, 4), CpuWorker(2, 2), CpuWorker(3, 2)};
  snapshot.pending = {CpuGang(1, 4, /*ranks_per_node=*/2)};
  result = MustPlace(snapshot);
  CHECK(GangLayout(result, 1) == std::vector<std::string>{"2:0:", "2:1:", "3:2:", "3:3:"});
}

TEST_CASE("A gang is placed all at once or not at all", "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {CpuWorker(1, 2, /*busy_slots=*/1), CpuWorker(2, 2, /*busy_slots=*/1)};
  snapshot.pending = {CpuGang(1, 3)};
  PlacementOptions no_reservation;
  no_reservation.max_reservations = 0;
  PlacementResult result = MustPlace(snapshot, no_reservation);
  CHECK(result.placed.empty());  // two of three ranks would fit: none is placed
  REQUIRE(UnplacedFor(result, 1) != nullptr);
  CHECK(UnplacedFor(result, 1)->reason == UnplacedReason::kWaitingForResources);
  CHECK(UnplacedFor(result, 1)->message ==
        "needs 3 ranks × 1 CPU slot; room for 2 ranks now (on 2 workers)");
}

TEST_CASE("A waiting gang holds what it needs so smaller runs behind it backfill elsewhere",
          "[scheduler][placement][gang]") {
  InMemoryPlacementState state;
  state.AddWorker(GpuWorker(1, 4, /*busy_gpus=*/0));
  state.AddWorker(GpuWorker(2, 4, /*busy_gpus=*/0));
  state.AddWorker(GpuWorker(3, 2, /*busy_gpus=*/0));
  // Four 1-GPU runs: best fit puts two on worker 3, then two on worker 1.
  for (int64_t run_id = 1; run_id <= 4; ++run_id) state.AddPending(GpuRun(run_id, 1));
  absl::StatusOr<ClusterSnapshot> snapshot = state.Snapshot(0);
  REQUIRE(snapshot.ok());
  PlacementResult result = MustPlace(*snapshot);
  REQUIRE(result.placed.size() == 4);
  REQUIRE(state.Commit(result.placed).ok());
  // A gang of 2 × 4 GPUs needs workers 1 and 2 whole; small runs keep arriving behind it.
  state.AddPending(GpuGang(5, 2, 4));
  for (int64_t run_id = 6; run_id <= 12; ++run_id) state.AddPending(GpuRun(run_id, 1));

  snapshot = state.Snapshot(0);
  REQUIRE(snapshot.ok());
  result = MustPlace(*snapshot);
  const UnplacedRun* gang = UnplacedFor(result, 5);
  REQUIRE(gang != nullptr);
  CHECK(gang->reason == UnplacedReason::kHoldingReservation);
  CHECK(gang->message ==
        "needs 2 ranks × 4 GPUs; room for 1 rank now (on 1 worker); holding 6 free GPUs and 2 CPU "
        "slots on workers 2, 1 until it fits");
  CHECK(result.placed.empty());  // worker 3 is full; workers 1 and 2 are held for the gang
  CHECK(UnplacedFor(result, 6)->message ==
        "needs 1 GPU, the most free on any worker is 0 (worker 1's free resources are held for "
        "run 5, earlier in the queue)");

  // The small runs on worker 1 finish one by one; the gang starts once both of its GPUs are free,
  // and nothing was backfilled onto the workers it holds meanwhile.
  bool gang_placed = false;
  for (int64_t finished : {3, 4}) {
    REQUIRE(state.Finish(finished).ok());
    snapshot = state.Snapshot(0);
    REQUIRE(snapshot.ok());
    result = MustPlace(*snapshot);
    for (const PlacementDecision& decision : result.placed) {
      if (decision.run_id == 5)
        gang_placed = true;
      else
        CHECK(decision.worker_id == 3);
    }
    REQUIRE(state.Commit(result.placed).ok());
  }
  CHECK(gang_placed);
}

TEST_CASE("A gang that can never fit says which part of it does not",
          "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {GpuWorker(1, 4), GpuWorker(2, 4), GpuWorker(3, 2), CpuWorker(4, 1),
                      CpuWorker(5, 1)};
  RunRequest labelled = GpuGang(4, 2, 1);
  labelled.node_labels["pool"] = "tpu";
  snapshot.pending = {GpuGang(1, 3, 4, /*ranks_per_node=*/1), GpuGang(2, 2, 8), CpuGang(3, 60),
                      labelled};
  PlacementResult result = MustPlace(snapshot);
  CHECK(result.placed.empty());
  for (int64_t run_id = 1; run_id <= 4; ++run_id) {
    CHECK(UnplacedFor(result, run_id)->reason == UnplacedReason::kNeverFits);
  }
  CHECK(UnplacedFor(result, 1)->message ==
        "needs 3 ranks × 4 GPUs with at most 1 rank per node; only 2 workers have 4 GPUs");
  CHECK(UnplacedFor(result, 2)->message == "needs 2 ranks × 8 GPUs; no worker has 8 GPUs");
  CHECK(UnplacedFor(result, 3)->message ==
        "needs 60 ranks × 1 CPU slot; even idle, the workers have room for only 50 ranks (on 5 "
        "workers)");
  CHECK(UnplacedFor(result, 4)->message ==
        "needs 2 ranks × 1 GPU on workers labelled pool=tpu, but no worker has these labels");
}

TEST_CASE("A gang's project quota counts every rank's GPUs", "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {GpuWorker(1, 8)};
  RunRequest gang = GpuGang(1, 2, 4);
  gang.project_id = 7;
  RunRequest small = GpuRun(2, 4);
  small.project_id = 7;
  snapshot.pending = {gang, small};
  snapshot.projects[7].name = "lab";
  snapshot.projects[7].gpu_quota = 6;
  PlacementResult result = MustPlace(snapshot);
  CHECK(PlacedRunIds(result) == std::vector<int64_t>{2});
  CHECK(UnplacedFor(result, 1)->reason == UnplacedReason::kQuota);
  CHECK(UnplacedFor(result, 1)->message ==
        "needs 2 ranks × 4 GPUs, but project lab uses 0 of its quota of 6 GPUs");
}

TEST_CASE("A retried gang avoids the worker that failed it only while it can fit without it",
          "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {CpuWorker(1, 1), CpuWorker(2, 1), CpuWorker(3, 1)};
  RunRequest gang = CpuGang(1, 2);
  gang.avoid_workers = {1};
  snapshot.pending = {gang};
  CHECK(GangLayout(MustPlace(snapshot), 1) == std::vector<std::string>{"2:0:", "3:1:"});
  // With two workers, avoiding one would make the gang wait forever: it uses both.
  snapshot.workers = {CpuWorker(1, 1), CpuWorker(2, 1)};
  CHECK(GangLayout(MustPlace(snapshot), 1) == std::vector<std::string>{"1:0:", "2:1:"});
}

TEST_CASE("Small runs fill a partly used node before an idle one of the same fit",
          "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  // Worker 1 is idle with 4 GPUs; worker 2 has 4 of its 8 GPUs free. A 2-GPU run leaves 2 free
  // on either: it goes to the partly used worker 2, so worker 1 stays whole for a gang.
  snapshot.workers = {GpuWorker(1, 4), GpuWorker(2, 8, /*busy_gpus=*/4)};
  snapshot.pending = {GpuRun(1, 2), GpuGang(2, 1, 4)};
  PlacementResult result = MustPlace(snapshot);
  REQUIRE(result.placed.size() == 2);
  CHECK(DecisionFor(result, 1)->worker_id == 2);
  CHECK(DecisionFor(result, 2)->worker_id == 1);
}

TEST_CASE("PlaceOnWorker gives a worker its ranks of a gang", "[scheduler][placement][gang]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {CpuWorker(1, 1), CpuWorker(2, 1), CpuWorker(3, 1, /*busy_slots=*/1)};
  snapshot.pending = {CpuGang(1, 2)};
  absl::StatusOr<PlacementResult> first = PlaceOnWorker(snapshot, 1, PlacementOptions());
  REQUIRE(first.ok());
  REQUIRE(first->placed.size() == 1);
  CHECK(first->placed[0].rank == 0);
  CHECK(first->unplaced.empty());  // placed, partly here: not "elsewhere"
  absl::StatusOr<PlacementResult> second = PlaceOnWorker(snapshot, 2, PlacementOptions());
  REQUIRE(second.ok());
  REQUIRE(second->placed.size() == 1);
  CHECK(second->placed[0].rank == 1);
  absl::StatusOr<PlacementResult> third = PlaceOnWorker(snapshot, 3, PlacementOptions());
  REQUIRE(third.ok());
  CHECK(third->placed.empty());
  REQUIRE(third->unplaced.size() == 1);
  CHECK(third->unplaced[0].reason == UnplacedReason::kPlacedElsewhere);
  CHECK(third->unplaced[0].message == "placed on workers 1, 2 in this round");
}

}  // namespace
}  // namespace scalelab::scheduler

namespace scalelab::scheduler {
namespace {

// The best-fit rule of placement.h, restated as a full scan of every worker per run: the oracle
// for Place's indexed search (FitOrder in placement.cc).
std::vector<PlacementDecision> BestFitByFullScan(std::vector<WorkerState> workers,
                                                 const std::vector<RunRequest>& runs) {
  std::vector<PlacementDecision> placed;
  for (const RunRequest& run : runs) {
    const ResourceDemand demand = DemandOf(run);
    WorkerState* best = nullptr;
    for (WorkerState& worker : workers) {
      int free_matching = 0;
      for (const Gpu& gpu : worker.gpus) free_matching += gpu.free && GpuMatches(gpu, run);
      if (worker.cpu_slots_free < demand.cpu_slots || free_matching < demand.gpus) continue;
      auto key = [&](const WorkerState& w) {
        const bool idle = w.cpu_slots_free == w.cpu_slots_total &&
                          w.FreeGpuCount() == static_cast<int>(w.gpus.size());
        return std::make_tuple(w.FreeGpuCount() - demand.gpus, w.cpu_slots_free - demand.cpu_slots,
                               idle, w.worker_id);
      };
      if (best == nullptr || key(worker) < key(*best)) best = &worker;
    }
    if (best == nullptr) continue;
    PlacementDecision decision;
    decision.run_id = run.run_id;
    decision.worker_id = best->worker_id;
    for (Gpu& gpu : best->gpus) {
      if (static_cast<int>(decision.gpu_indices.size()) == demand.gpus) break;
      if (gpu.free && GpuMatches(gpu, run)) {
        gpu.free = false;
        decision.gpu_indices.push_back(gpu.index);
      }
    }
    best->cpu_slots_free -= demand.cpu_slots;
    decision.cpu_slots = demand.cpu_slots;
    placed.push_back(std::move(decision));
  }
  return placed;
}

TEST_CASE("Best fit over hundreds of workers picks, run after run, what a full scan picks",
          "[scheduler][placement]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    ClusterSnapshot snapshot;
    std::uniform_int_distribution<int> gpus(0, 8), slots(0, 12), model(0, 1), demand(0, 4);
    for (int worker_idx = 0; worker_idx < 300; ++worker_idx) {
      const int gpu_count = gpus(rng);
      const int busy = std::uniform_int_distribution<int>(0, gpu_count)(rng);
      WorkerState worker =
          GpuWorker(1000 - worker_idx, gpu_count, busy,
                    model(rng) == 0 ? "NVIDIA H200" : "NVIDIA A100", 80 * kGiB, busy + slots(rng));
      snapshot.workers.push_back(std::move(worker));
    }
    for (int run_idx = 1; run_idx <= 400; ++run_idx) {
      const int want = demand(rng);
      RunRequest run = want == 0 ? CpuRun(run_idx, 1 + run_idx % 3) : GpuRun(run_idx, want);
      if (want > 0 && run_idx % 5 == 0) run.gpu_model = "NVIDIA A100";
      snapshot.pending.push_back(std::move(run));
    }
    PlacementOptions no_reservations;
    no_reservations.max_reservations = 0;
    const PlacementResult result = MustPlace(snapshot, no_reservations);
    const std::vector<PlacementDecision> expected =
        BestFitByFullScan(snapshot.workers, snapshot.pending);
    REQUIRE(result.placed.size() == expected.size());
    for (size_t idx = 0; idx < expected.size(); ++idx) {
      INFO("trial " << trial << ", decision " << idx << ", run " << expected[idx].run_id);
      CHECK(result.placed[idx].run_id == expected[idx].run_id);
      CHECK(result.placed[idx].worker_id == expected[idx].worker_id);
      CHECK(result.placed[idx].gpu_indices == expected[idx].gpu_indices);
      CHECK(result.placed[idx].cpu_slots == expected[idx].cpu_slots);
    }
  }
}

}  // namespace
}  // namespace scalelab::scheduler
