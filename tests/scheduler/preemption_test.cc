#include "scheduler/preemption.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "scheduler/placement.h"
#include "scheduler/resources.h"

namespace scalelab::scheduler {
namespace {

constexpr int kLow = static_cast<int>(PriorityClass::kLow);
constexpr int kNormal = static_cast<int>(PriorityClass::kNormal);
constexpr int kHigh = static_cast<int>(PriorityClass::kHigh);
constexpr int kCritical = static_cast<int>(PriorityClass::kCritical);

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

// A worker with `gpu_count` GPUs of `model` and `cpu_slots` slots, everything free; Hold marks
// what the running attempts of a test hold.
WorkerState Worker(int64_t worker_id, int gpu_count, int cpu_slots,
                   const std::string& model = "NVIDIA H200") {
  WorkerState worker;
  worker.worker_id = worker_id;
  worker.name = "w" + std::to_string(worker_id);
  worker.cpu_slots_total = cpu_slots;
  worker.cpu_slots_free = cpu_slots;
  for (int gpu_idx = 0; gpu_idx < gpu_count; ++gpu_idx) {
    Gpu gpu;
    gpu.index = gpu_idx;
    gpu.model = model;
    gpu.memory_bytes = int64_t{80} << 30;
    worker.gpus.push_back(gpu);
  }
  return worker;
}

RunRequest Run(int64_t run_id, int priority, int gpus, int cpus = 1) {
  RunRequest run;
  run.run_id = run_id;
  run.sweep_id = 100 + priority;
  run.position = run_id;
  run.priority = priority;
  run.gpus = gpus;
  run.cpus = cpus;
  return run;
}

// A running attempt started `age` ago with no checkpoint.
RunningAttempt Running(int64_t run_id, int64_t worker_id, int priority, std::vector<int> gpus,
                       int cpu_slots = 1, absl::Duration age = absl::Minutes(10)) {
  RunningAttempt attempt;
  attempt.run_id = run_id;
  attempt.attempt = 1;
  attempt.sweep_id = 100 + priority;
  attempt.worker_id = worker_id;
  attempt.priority = priority;
  attempt.gpu_indices = std::move(gpus);
  attempt.cpu_slots = cpu_slots;
  attempt.started_at = kNow - age;
  return attempt;
}

// The cluster with the running attempts' resources held, then one placement round over
// `pending` and the preemption plan for what it left unplaced.
struct Scenario {
  std::vector<WorkerState> workers;
  std::vector<RunningAttempt> running;
  std::vector<InFlightPreemptor> in_flight;
  std::vector<RunRequest> pending;
  PreemptionOptions options;

  std::vector<PreemptionDecision> Plan() {
    ClusterSnapshot snapshot;
    snapshot.workers = workers;
    for (WorkerState& worker : snapshot.workers) {
      for (const RunningAttempt& attempt : running) {
        if (attempt.worker_id == worker.worker_id) {
          REQUIRE(MarkHeld(worker, attempt.gpu_indices, attempt.cpu_slots).ok());
        }
      }
      for (const InFlightPreemptor& preemptor : in_flight) {
        if (preemptor.worker_id != worker.worker_id) continue;
        // As the store counts it: only what its victims do not hold already.
        for (Gpu& gpu : worker.gpus) {
          for (int index : preemptor.gpu_indices) {
            if (gpu.index == index) gpu.free = false;
          }
        }
      }
    }
    snapshot.pending = pending;
    absl::StatusOr<PlacementResult> placed = Place(snapshot, PlacementOptions{});
    REQUIRE(placed.ok());
    PreemptionInput input;
    input.workers = WorkersAfterPlacement(snapshot, placed->placed);
    input.running = running;
    input.in_flight = in_flight;
    return PlanPreemptions(input, pending, placed->unplaced, kNow, options);
  }
};

std::vector<int64_t> VictimIds(const PreemptionDecision& decision) {
  std::vector<int64_t> ids;
  for (const PreemptionVictim& victim : decision.victims) ids.push_back(victim.run_id);
  return ids;
}

TEST_CASE("a critical run preempts the low run holding the GPUs it needs, and holds them",
          "[scheduler][preemption]") {
  Scenario scenario;
  scenario.workers = {Worker(3, 2, 4)};
  scenario.running = {Running(7, 3, kLow, {0, 1})};
  scenario.pending = {Run(812, kCritical, 2)};
  std::vector<PreemptionDecision> decisions = scenario.Plan();
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].preemptor_run_id == 812);
  CHECK(decisions[0].worker_id == 3);
  CHECK(VictimIds(decisions[0]) == std::vector<int64_t>{7});
  CHECK(decisions[0].gpu_indices == std::vector<int>{0, 1});
  CHECK(decisions[0].cpu_slots == 1);
  CHECK(decisions[0].reason ==
        "critical run 812 (sweep 103) needs 2 GPUs and 1 CPU slot on worker 3");
}

TEST_CASE("runs of one class never preempt each other, nor a lower class a higher one",
          "[scheduler][preemption]") {
  Scenario scenario;
  scenario.workers = {Worker(1, 0, 1)};
  scenario.running = {Running(7, 1, kNormal, {})};
  scenario.pending = {Run(8, kNormal, 0), Run(9, kLow, 0)};
  CHECK(scenario.Plan().empty());
  scenario.pending.push_back(Run(10, kHigh, 0));
  std::vector<PreemptionDecision> decisions = scenario.Plan();
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].preemptor_run_id == 10);
  CHECK(decisions[0].reason == "high run 10 (sweep 102) needs 1 CPU slot on worker 1");
}

TEST_CASE("the cheapest victims: lowest class first, then fewest, then least work lost",
          "[scheduler][preemption]") {
  SECTION("two low runs before one normal run") {
    Scenario scenario;
    scenario.workers = {Worker(1, 4, 8)};
    scenario.running = {Running(5, 1, kNormal, {0, 1}), Running(6, 1, kLow, {2}),
                        Running(7, 1, kLow, {3})};
    scenario.pending = {Run(20, kCritical, 2)};
    std::vector<PreemptionDecision> decisions = scenario.Plan();
    REQUIRE(decisions.size() == 1);
    CHECK(VictimIds(decisions[0]) == std::vector<int64_t>{6, 7});
    CHECK(decisions[0].gpu_indices == std::vector<int>{2, 3});
  }
  SECTION("one low run holding two GPUs before two holding one each") {
    Scenario scenario;
    scenario.workers = {Worker(1, 4, 8)};
    scenario.running = {Running(5, 1, kLow, {0}), Running(6, 1, kLow, {1, 2}),
                        Running(7, 1, kLow, {3})};
    scenario.pending = {Run(20, kCritical, 2)};
    std::vector<PreemptionDecision> decisions = scenario.Plan();
    REQUIRE(decisions.size() == 1);
    CHECK(VictimIds(decisions[0]) == std::vector<int64_t>{6});
  }
  SECTION("the run with the newest checkpoint, then the one started last") {
    Scenario scenario;
    scenario.workers = {Worker(1, 3, 8)};
    scenario.running = {Running(5, 1, kLow, {0}, 1, absl::Hours(2)),
                        Running(6, 1, kLow, {1}, 1, absl::Hours(2)),
                        Running(7, 1, kLow, {2}, 1, absl::Hours(1))};
    scenario.running[0].last_checkpoint_at = kNow - absl::Minutes(1);
    scenario.pending = {Run(20, kCritical, 1)};
    std::vector<PreemptionDecision> decisions = scenario.Plan();
    REQUIRE(decisions.size() == 1);
    CHECK(VictimIds(decisions[0]) == std::vector<int64_t>{5});
    scenario.running[0].last_checkpoint_at = absl::InfinitePast();
    decisions = scenario.Plan();
    REQUIRE(decisions.size() == 1);
    CHECK(VictimIds(decisions[0]) == std::vector<int64_t>{7});
  }
  SECTION("free GPUs count: one victim is enough next to a free GPU") {
    Scenario scenario;
    scenario.workers = {Worker(1, 4, 8)};
    scenario.running = {Running(5, 1, kLow, {0}), Running(6, 1, kLow, {1}),
                        Running(7, 1, kLow, {2})};
    scenario.pending = {Run(20, kCritical, 2)};
    std::vector<PreemptionDecision> decisions = scenario.Plan();
    REQUIRE(decisions.size() == 1);
    CHECK(decisions[0].victims.size() == 1);
    // The victim's GPU first, then the free one.
    CHECK(decisions[0].gpu_indices.size() == 2);
    CHECK(decisions[0].gpu_indices.back() == 3);
  }
}

TEST_CASE("victims free only GPUs the run can use: model, labels and avoided workers",
          "[scheduler][preemption]") {
  Scenario scenario;
  scenario.workers = {Worker(1, 1, 2, "NVIDIA A100"), Worker(2, 1, 2, "NVIDIA H200")};
  scenario.running = {Running(5, 1, kLow, {0}), Running(6, 2, kLow, {0})};
  RunRequest run = Run(20, kCritical, 1);
  run.gpu_model = "h200";
  scenario.pending = {run};
  std::vector<PreemptionDecision> decisions = scenario.Plan();
  REQUIRE(decisions.size() == 1);
  CHECK(decisions[0].worker_id == 2);
  CHECK(VictimIds(decisions[0]) == std::vector<int64_t>{6});

  scenario.pending[0].node_labels["zone"] = "b";
  CHECK(scenario.Plan().empty());  // no worker carries the label
  scenario.workers[1].labels["zone"] = "b";
  CHECK(scenario.Plan().size() == 1);
  scenario.pending[0].avoid_workers = {2};
  CHECK(scenario.Plan().empty());
}

TEST_CASE("a run preempted within the cool-down is not preempted again",
          "[scheduler][preemption]") {
  Scenario scenario;
  scenario.workers = {Worker(1, 0, 1)};
  scenario.running = {Running(5, 1, kLow, {})};
  scenario.running[0].last_preempted_at = kNow - absl::Minutes(2);
  scenario.pending = {Run(20, kCritical, 0)};
  scenario.options.cooldown = absl::Minutes(5);
  CHECK(scenario.Plan().empty());
  scenario.options.cooldown = absl::Minutes(1);
  CHECK(scenario.Plan().size() == 1);
}

TEST_CASE("at most max_per_pass preemptors a pass, and each victim once",
          "[scheduler][preemption]") {
  Scenario scenario;
  scenario.workers = {Worker(1, 0, 3)};
  scenario.running = {Running(5, 1, kLow, {}), Running(6, 1, kLow, {}), Running(7, 1, kLow, {})};
  scenario.pending = {Run(20, kCritical, 0), Run(21, kCritical, 0), Run(22, kHigh, 0),
                      Run(23, kHigh, 0)};
  scenario.options.max_per_pass = 2;
  std::vector<PreemptionDecision> decisions = scenario.Plan();
  REQUIRE(decisions.size() == 2);
  CHECK(decisions[0].preemptor_run_id == 20);
  CHECK(decisions[1].preemptor_run_id == 21);
  CHECK(VictimIds(decisions[0]) != VictimIds(decisions[1]));
  scenario.options.max_per_pass = 10;
  decisions = scenario.Plan();
  CHECK(decisions.size() == 3);  // three victims for four runs
}

TEST_CASE("a run that fits what preemptions in flight will free waits instead of preempting",
          "[scheduler][preemption]") {
  Scenario scenario;
  scenario.workers = {Worker(1, 4, 8)};
  // Run 5 is being preempted for run 30, which takes two of its four GPUs.
  scenario.running = {Running(5, 1, kLow, {0, 1, 2, 3}, 1), Running(6, 1, kLow, {})};
  scenario.running[0].preempt_requested = true;
  scenario.in_flight = {InFlightPreemptor{30, 1, {0, 1}, 1}};
  scenario.pending = {Run(20, kCritical, 2)};
  CHECK(scenario.Plan().empty());  // GPUs 2 and 3 will be free soon
  scenario.pending = {Run(20, kCritical, 3)};
  // Three GPUs: more than will be freed; but no other victim holds GPUs, and run 5 is already
  // being preempted, so nothing can be done.
  CHECK(scenario.Plan().empty());
}

TEST_CASE("runs refused for quota or that never fit preempt nothing", "[scheduler][preemption]") {
  Scenario scenario;
  scenario.workers = {Worker(1, 2, 4)};
  scenario.running = {Running(5, 1, kLow, {0, 1})};
  scenario.pending = {Run(20, kCritical, 8)};  // never fits
  CHECK(scenario.Plan().empty());
  scenario.options.enabled = false;
  scenario.pending = {Run(21, kCritical, 2)};
  CHECK(scenario.Plan().empty());
}

TEST_CASE("preemption options are validated", "[scheduler][preemption]") {
  PreemptionOptions options;
  CHECK(options.Validate().ok());
  options.max_per_pass = 0;
  CHECK(options.Validate().message() == "max_per_pass: expected >= 1, got 0");
  options = PreemptionOptions{};
  options.cooldown = absl::Seconds(-1);
  CHECK(options.Validate().message() == "cooldown: expected >= 0, got -1s");
}

}  // namespace
}  // namespace scalelab::scheduler
