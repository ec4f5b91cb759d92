// The admission policy of one placement round, without a database: priority classes, weighted
// fair share between projects, GPU quotas and node labels (scheduler/placement.h).
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "scheduler/placement.h"
#include "scheduler/resources.h"

namespace scalelab::scheduler {
namespace {

WorkerState Worker(int64_t worker_id, int gpu_count, int free_gpus, int cpu_slots = 16) {
  WorkerState worker;
  worker.worker_id = worker_id;
  worker.name = "w" + std::to_string(worker_id);
  worker.cpu_slots_total = cpu_slots;
  worker.cpu_slots_free = cpu_slots - (gpu_count - free_gpus);
  for (int gpu_idx = 0; gpu_idx < gpu_count; ++gpu_idx) {
    Gpu gpu;
    gpu.index = gpu_idx;
    gpu.model = "NVIDIA H200";
    gpu.memory_bytes = int64_t{141} << 30;
    gpu.free = gpu_idx >= gpu_count - free_gpus;
    worker.gpus.push_back(gpu);
  }
  return worker;
}

RunRequest Run(int64_t run_id, int gpus, int64_t project_id = 1,
               PriorityClass priority = PriorityClass::kNormal) {
  RunRequest run;
  run.run_id = run_id;
  run.sweep_id = project_id;
  run.position = run_id;
  run.gpus = gpus;
  run.project_id = project_id;
  run.priority = static_cast<int>(priority);
  return run;
}

PlacementResult MustPlace(const ClusterSnapshot& snapshot) {
  absl::StatusOr<PlacementResult> result = Place(snapshot, PlacementOptions());
  REQUIRE(result.ok());
  return *std::move(result);
}

std::vector<int64_t> PlacedIds(const PlacementResult& result) {
  std::vector<int64_t> ids;
  for (const PlacementDecision& decision : result.placed) ids.push_back(decision.run_id);
  return ids;
}

const UnplacedRun* FindUnplaced(const PlacementResult& result, int64_t run_id) {
  for (const UnplacedRun& unplaced : result.unplaced) {
    if (unplaced.run_id == run_id) return &unplaced;
  }
  return nullptr;
}

TEST_CASE("Priority class names parse, and nothing else does", "[scheduler][admission]") {
  CHECK(PriorityClassFromName("critical") == PriorityClass::kCritical);
  CHECK(PriorityClassFromName("low") == PriorityClass::kLow);
  CHECK_FALSE(PriorityClassFromName("urgent").has_value());
  CHECK_FALSE(PriorityClassFromName("").has_value());
  CHECK(std::string(PriorityClassName(PriorityClass::kHigh)) == "high");
}

TEST_CASE("A higher class goes first even when it is later in the queue",
          "[scheduler][admission]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {Worker(1, 2, 2)};
  snapshot.pending = {Run(1, 1, 1, PriorityClass::kLow), Run(2, 1, 1, PriorityClass::kNormal),
                      Run(3, 1, 1, PriorityClass::kCritical)};
  PlacementResult result = MustPlace(snapshot);
  CHECK(PlacedIds(result) == std::vector<int64_t>{3, 2});
  REQUIRE(FindUnplaced(result, 1) != nullptr);
}

TEST_CASE("Within a class the project under its fair share goes first", "[scheduler][admission]") {
  // Project 1 already holds 4 GPUs, project 2 none; project 1's runs are earlier in the queue.
  ClusterSnapshot snapshot;
  snapshot.workers = {Worker(1, 8, 4)};
  snapshot.projects[1].gpus_in_use = 4;
  snapshot.projects[2].gpus_in_use = 0;
  snapshot.pending = {Run(1, 1, 1), Run(2, 1, 1), Run(3, 1, 2), Run(4, 1, 2), Run(5, 1, 2)};
  PlacementResult result = MustPlace(snapshot);
  // Project 2's three runs go first (its share stays under project 1's 4/8), then project 1's
  // first run takes the last free GPU.
  CHECK(PlacedIds(result) == std::vector<int64_t>{3, 4, 5, 1});
  REQUIRE(FindUnplaced(result, 2) != nullptr);
}

TEST_CASE("A project's weight scales its fair share", "[scheduler][admission]") {
  // Both hold 2 GPUs; project 1 has weight 4, so its share (2/8/4) is below project 2's (2/8).
  ClusterSnapshot snapshot;
  snapshot.workers = {Worker(1, 8, 4)};
  snapshot.projects[1].gpus_in_use = 2;
  snapshot.projects[1].weight = 4;
  snapshot.projects[2].gpus_in_use = 2;
  snapshot.pending = {Run(1, 1, 2), Run(2, 1, 2), Run(3, 1, 1), Run(4, 1, 1)};
  PlacementResult result = MustPlace(snapshot);
  REQUIRE(result.placed.size() == 4);
  CHECK(result.placed[0].run_id == 3);
  CHECK(result.placed[1].run_id == 4);
}

TEST_CASE("A project at its GPU quota waits with reason QUOTA; its CPU runs do not",
          "[scheduler][admission]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {Worker(1, 8, 6)};
  snapshot.projects[1].name = "vision";
  snapshot.projects[1].gpu_quota = 3;
  snapshot.projects[1].gpus_in_use = 2;
  RunRequest cpu_run = Run(3, 0, 1);
  snapshot.pending = {Run(1, 2, 1), Run(2, 1, 1), cpu_run, Run(4, 1, 2)};
  PlacementResult result = MustPlace(snapshot);
  // Project 2 holds nothing, so it goes first; then 2 GPUs would take vision to 4 > 3, while
  // 1 GPU fits the quota exactly.
  CHECK(PlacedIds(result) == std::vector<int64_t>{4, 2, 3});
  const UnplacedRun* quota = FindUnplaced(result, 1);
  REQUIRE(quota != nullptr);
  CHECK(quota->reason == UnplacedReason::kQuota);
  CHECK(std::string(UnplacedReasonName(quota->reason)) == "QUOTA");
  CHECK(absl::StrContains(quota->message, "project vision uses 2 of its quota of 3 GPUs"));
}

TEST_CASE("A run requiring labels goes only to a worker carrying them", "[scheduler][admission]") {
  ClusterSnapshot snapshot;
  WorkerState plain = Worker(1, 8, 8);
  WorkerState labelled = Worker(2, 8, 8);
  labelled.labels["pool"] = "a100";
  snapshot.workers = {plain, labelled};
  RunRequest wants_label = Run(1, 1);
  wants_label.node_labels["pool"] = "a100";
  RunRequest wants_missing = Run(2, 1);
  wants_missing.node_labels["pool"] = "tpu";
  snapshot.pending = {wants_label, wants_missing};
  PlacementResult result = MustPlace(snapshot);
  REQUIRE(result.placed.size() == 1);
  CHECK(result.placed[0].worker_id == 2);
  const UnplacedRun* never = FindUnplaced(result, 2);
  REQUIRE(never != nullptr);
  CHECK(never->reason == UnplacedReason::kNeverFits);
  CHECK(absl::StrContains(never->message, "pool=tpu, but no worker has these labels"));
}

TEST_CASE("A gang is placed with all of its ranks, never as a single rank",
          "[scheduler][admission]") {
  ClusterSnapshot snapshot;
  snapshot.workers = {Worker(1, 8, 8)};
  RunRequest gang = Run(1, 1);
  gang.ranks = 2;
  snapshot.pending = {gang, Run(2, 1)};
  PlacementResult result = MustPlace(snapshot);
  CHECK(PlacedIds(result) == std::vector<int64_t>{1, 1, 2});
  CHECK(result.placed[0].rank == 0);
  CHECK(result.placed[1].rank == 1);
  CHECK(result.placed[1].gpu_indices != result.placed[0].gpu_indices);
}

TEST_CASE("A round over many identical runs places what fits and explains the rest",
          "[scheduler][admission]") {
  // 20,000 pending 1-GPU runs on 100 workers x 8 GPUs: 800 placed, the rest wait, one of them
  // holding the reservation.
  ClusterSnapshot snapshot;
  for (int64_t worker_id = 1; worker_id <= 100; ++worker_id) {
    snapshot.workers.push_back(Worker(worker_id, 8, 8));
  }
  for (int64_t run_id = 1; run_id <= 20000; ++run_id) {
    snapshot.pending.push_back(Run(run_id, 1, 1 + run_id % 3));
  }
  PlacementResult result = MustPlace(snapshot);
  CHECK(result.placed.size() == 800);
  REQUIRE(result.unplaced.size() == 19200);
  for (const UnplacedRun& unplaced : result.unplaced) {
    CHECK((unplaced.reason == UnplacedReason::kWaitingForResources ||
           unplaced.reason == UnplacedReason::kHoldingReservation));
  }
  // Three equal projects split the cluster evenly (within one run).
  std::vector<int> per_project(4, 0);
  for (const PlacementDecision& decision : result.placed) ++per_project[1 + decision.run_id % 3];
  CHECK(per_project[1] >= 266);
  CHECK(per_project[2] >= 266);
  CHECK(per_project[3] >= 266);
}

}  // namespace
}  // namespace scalelab::scheduler
