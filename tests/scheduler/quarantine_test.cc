#include "scheduler/quarantine.h"

#include <catch2/catch.hpp>

namespace scalelab::scheduler {
namespace {

services::WorkerFailureStats Worker(int64_t id, int failures, const char* state = "ALIVE") {
  services::WorkerFailureStats worker;
  worker.worker_id = id;
  worker.infra_failures = failures;
  worker.state = state;
  return worker;
}

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

TEST_CASE(
    "A worker whose infrastructure failures stand out is quarantined; a common problem is "
    "not",
    "[scheduler][quarantine]") {
  QuarantineOptions options;  // >= 3 failures and > 3x the others' mean
  auto actions = DecideQuarantine({Worker(1, 5), Worker(2, 1), Worker(3, 0)}, kNow, options);
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].worker_id == 1);
  CHECK(actions[0].quarantine);
  CHECK(actions[0].reason.find("5 infrastructure failures") != std::string::npos);

  // Every worker fails alike (a shared file system, say): nobody stands out.
  CHECK(DecideQuarantine({Worker(1, 4), Worker(2, 3), Worker(3, 4)}, kNow, options).empty());
  // Too few failures to mean anything.
  CHECK(DecideQuarantine({Worker(1, 2), Worker(2, 0)}, kNow, options).empty());
  // The last live worker is never quarantined, whatever its failures.
  CHECK(DecideQuarantine({Worker(1, 9)}, kNow, options).empty());
  CHECK(DecideQuarantine({Worker(1, 9), Worker(2, 0, "QUARANTINED")}, kNow, options).empty());
  // Two outliers and one healthy worker: the healthy one is kept live.
  auto both = DecideQuarantine({Worker(1, 9), Worker(2, 9), Worker(3, 0)}, kNow, options);
  CHECK(both.empty());  // 9 is not > 3 x 4.5
}

TEST_CASE("A quarantined worker is released after the cool-down and enough healthy heartbeats",
          "[scheduler][quarantine]") {
  QuarantineOptions options;
  options.cooldown = absl::Minutes(10);
  options.release_after_healthy = 5;
  services::WorkerFailureStats worker = Worker(4, 0, "QUARANTINED");
  worker.quarantined_at = kNow - absl::Minutes(5);
  worker.healthy_streak = 50;
  CHECK(DecideQuarantine({worker, Worker(5, 0)}, kNow, options).empty());  // cooling down
  worker.quarantined_at = kNow - absl::Minutes(11);
  worker.healthy_streak = 4;
  CHECK(DecideQuarantine({worker, Worker(5, 0)}, kNow, options).empty());  // not healthy enough
  worker.healthy_streak = 5;
  auto actions = DecideQuarantine({worker, Worker(5, 0)}, kNow, options);
  REQUIRE(actions.size() == 1);
  CHECK(actions[0].worker_id == 4);
  CHECK_FALSE(actions[0].quarantine);
}

}  // namespace
}  // namespace scalelab::scheduler
