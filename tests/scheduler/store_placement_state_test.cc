// The conversion from the store's placement rows to the policy's resource model.
#include "scheduler/store_placement_state.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace scalelab::scheduler {
namespace {

services::StoredWorker Worker(int64_t worker_id, int cpu_slots, int gpus) {
  services::StoredWorker worker;
  worker.worker_id = worker_id;
  worker.inventory.set_name("w" + std::to_string(worker_id));
  worker.inventory.set_cpu_slots(cpu_slots);
  for (int index = 0; index < gpus; ++index) {
    v1::GpuInfo* gpu = worker.inventory.add_gpus();
    gpu->set_index(index);
    gpu->set_name("NVIDIA H200");
    gpu->set_memory_bytes(int64_t{141} << 30);
  }
  (*worker.inventory.mutable_labels())["rack"] = "r1";
  return worker;
}

services::StoredPendingRun Pending(int64_t run_id, int gpus, bool init_ready = true) {
  services::StoredPendingRun run;
  run.run_id = run_id;
  run.sweep_id = 7;
  run.run_index = static_cast<int32_t>(run_id);
  run.resources.set_gpus(gpus);
  run.init_ready = init_ready;
  return run;
}

TEST_CASE("A stored snapshot becomes free resources: holds subtracted, waiting runs left out",
          "[scheduler][placement]") {
  services::PlacementSnapshot stored;
  stored.workers.push_back(Worker(1, 4, 4));
  stored.workers[0].held.push_back({10, {1, 2}, 1});
  stored.workers[0].held.push_back({11, {}, 2});
  stored.workers.push_back(Worker(2, 2, 0));
  stored.pending = {Pending(20, 2), Pending(21, 0, /*init_ready=*/false), Pending(22, 0)};

  ClusterSnapshot snapshot = ToClusterSnapshot(stored);
  REQUIRE(snapshot.workers.size() == 2);
  const WorkerState& gpu_worker = snapshot.workers[0];
  CHECK(gpu_worker.worker_id == 1);
  CHECK(gpu_worker.cpu_slots_total == 4);
  CHECK(gpu_worker.cpu_slots_free == 1);
  REQUIRE(gpu_worker.gpus.size() == 4);
  CHECK(gpu_worker.gpus[0].free);
  CHECK_FALSE(gpu_worker.gpus[1].free);
  CHECK_FALSE(gpu_worker.gpus[2].free);
  CHECK(gpu_worker.gpus[3].free);
  CHECK(gpu_worker.gpus[3].model == "NVIDIA H200");
  CHECK(gpu_worker.labels.at("rack") == "r1");
  CHECK(snapshot.workers[1].cpu_slots_free == 2);

  REQUIRE(snapshot.pending.size() == 2);
  CHECK(snapshot.pending[0].run_id == 20);
  CHECK(snapshot.pending[0].gpus == 2);
  CHECK(snapshot.pending[1].run_id == 22);
  CHECK(snapshot.pending[0].position < snapshot.pending[1].position);
  for (const WorkerState& worker : snapshot.workers) CHECK(worker.Validate().ok());
}

TEST_CASE("Holds the inventory cannot cover never leave a worker with more than it has",
          "[scheduler][placement]") {
  services::PlacementSnapshot stored;
  stored.workers.push_back(Worker(1, 1, 2));
  stored.workers[0].held.push_back({10, {0}, 1});
  stored.workers[0].held.push_back({11, {0, 5}, 1});  // GPU 0 twice, GPU 5 unknown, no slot left
  ClusterSnapshot snapshot = ToClusterSnapshot(stored);
  REQUIRE(snapshot.workers.size() == 1);
  const WorkerState& worker = snapshot.workers[0];
  CHECK(worker.cpu_slots_free == 0);
  CHECK_FALSE(worker.gpus[0].free);
  CHECK(worker.gpus[1].free);
  CHECK(worker.Validate().ok());
}

}  // namespace
}  // namespace scalelab::scheduler
