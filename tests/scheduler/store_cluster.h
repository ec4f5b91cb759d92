// A store-backed cluster for the scheduler's PostgreSQL tests: a fresh database (pg_harness.h),
// the store, the placement state over it and a fake clock, with helpers to register workers and
// run admission passes. Each test file derives its own fixture from it.
#ifndef SCALELAB_TESTS_SCHEDULER_STORE_CLUSTER_H_
#define SCALELAB_TESTS_SCHEDULER_STORE_CLUSTER_H_

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "scheduler/admission.h"
#include "scheduler/store_placement_state.h"
#include "services/common/clock.h"
#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {

struct StoreCluster {
  std::string url = scalelab::testing::FreshDatabaseUrl();
  std::unique_ptr<services::Store> store = Open(url);
  std::unique_ptr<StorePlacementState> state = std::make_unique<StorePlacementState>(store.get());
  services::FakeClock clock;

  static std::unique_ptr<services::Store> Open(const std::string& url) {
    services::StoreOptions options;
    options.url = url;
    auto opened = services::Store::Open(options);
    REQUIRE(opened.ok());
    return *std::move(opened);
  }

  // A worker with `cpu_slots` slots and `gpus` H200s (141 GiB each), indices 0..gpus-1.
  int64_t RegisterWorker(const std::string& name, int cpu_slots, int gpus) {
    v1::RegisterRequest request;
    request.set_name(name);
    request.set_hostname("test");
    request.set_cpu_slots(cpu_slots);
    for (int index = 0; index < gpus; ++index) {
      v1::GpuInfo* gpu = request.add_gpus();
      gpu->set_index(index);
      gpu->set_name("NVIDIA H200");
      gpu->set_memory_bytes(int64_t{141} << 30);
    }
    return RegisterWorker(request);
  }
  int64_t RegisterWorker(const v1::RegisterRequest& request) {
    auto id = store->RegisterWorker(request);
    REQUIRE(id.ok());
    return *id;
  }

  // One admission pass at the fake clock's time; `preemption` as RunAdmissionPass takes it.
  AdmissionPass Pass(const PreemptionOptions* preemption = nullptr) {
    auto pass = RunAdmissionPass(*state, *store, clock.Now(), PlacementOptions(), preemption);
    REQUIRE(pass.ok());
    return *std::move(pass);
  }

  v1::Run Get(int64_t run_id) {
    auto run = store->GetRun(run_id);
    REQUIRE(run.ok());
    return *std::move(run);
  }
  v1::RunState StateOf(int64_t run_id) { return Get(run_id).state(); }
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_TESTS_SCHEDULER_STORE_CLUSTER_H_
