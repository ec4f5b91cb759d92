// WatchSweep on the callback API, over real gRPC and a real PostgreSQL: the scheduler in-process
// on port 0, watchers as async streams on one client thread, and this test acting as the worker
// (Register, LeaseRuns, CompleteRun over gRPC), so that the process's thread count is the
// server's plus a fixed few.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "scalelab/v1/sweep.grpc.pb.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "services/api/grpc_server.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Threads of this process now (/proc/self/status).
int ThreadCount() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "Threads:") {
      int threads = 0;
      status >> threads;
      return threads;
    }
    std::string rest;
    std::getline(status, rest);
  }
  return -1;
}

struct InProcessScheduler {
  std::unique_ptr<Scheduler> scheduler;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::SweepService::Stub> sweeps;
  std::unique_ptr<v1::WorkerService::Stub> workers;

  InProcessScheduler() {
    SchedulerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_address = "";
    options.database_url = scalelab::testing::FreshDatabaseUrl();
    options.run_fitter = false;
    auto started = Scheduler::Start(options);
    INFO(started.status().ToString());
    REQUIRE(started.ok());
    scheduler = *std::move(started);
    channel = services::MakeChannel("127.0.0.1:" + std::to_string(scheduler->grpc_port()));
    sweeps = v1::SweepService::NewStub(channel);
    workers = v1::WorkerService::NewStub(channel);
  }

  int64_t Submit(int runs) {
    std::string seeds;
    for (int seed = 1; seed <= runs; ++seed) seeds += (seed > 1 ? ", " : "") + std::to_string(seed);
    v1::SubmitSweepRequest request;
    request.set_manifest_yaml(
        "name: watched\nproject: tests\nkind: pretrain\nbase:\n"
        "  model: {family: transformer, d_model: 8, n_layers: 1, n_heads: 1, seq_len: 16}\n"
        "  data: {sources: {corpus: data/corpus}}\n"
        "  train: {tokens: 64, batch_tokens: 64, lr: 1e-2}\n"
        "  resources: {cpus: 1}\n"
        "sweep:\n  grid: {train.seed: [" +
        seeds + "]}\n");
    v1::SubmitSweepResponse response;
    grpc::ClientContext context;
    grpc::Status status = sweeps->SubmitSweep(&context, request, &response);
    INFO(status.error_message());
    REQUIRE(status.ok());
    return response.sweep().id();
  }

  // Leases every run of the sweep to one worker and completes each, succeeded.
  void RunAll(int runs) {
    v1::RegisterRequest registration;
    registration.set_name("watch-test-worker");
    registration.set_hostname("test");
    registration.set_cpu_slots(runs);
    v1::RegisterResponse registered;
    {
      grpc::ClientContext context;
      REQUIRE(workers->Register(&context, registration, &registered).ok());
    }
    std::vector<v1::Lease> leases;
    const auto deadline = SteadyClock::now() + std::chrono::seconds(20);
    while (static_cast<int>(leases.size()) < runs && SteadyClock::now() < deadline) {
      v1::LeaseRunsRequest request;
      request.set_worker_id(registered.worker_id());
      request.set_free_slots(runs - static_cast<int>(leases.size()));
      v1::LeaseRunsResponse response;
      grpc::ClientContext context;
      grpc::Status status = workers->LeaseRuns(&context, request, &response);
      INFO(status.error_message());
      REQUIRE(status.ok());
      leases.insert(leases.end(), response.leases().begin(), response.leases().end());
    }
    REQUIRE(static_cast<int>(leases.size()) == runs);
    for (const v1::Lease& lease : leases) {
      v1::CompleteRunRequest request;
      request.set_worker_id(registered.worker_id());
      request.set_run_id(lease.spec().run_id());
      request.set_attempt(lease.spec().attempt());
      request.set_lease_token(lease.spec().lease_token());
      request.set_succeeded(true);
      v1::CompleteRunResponse response;
      grpc::ClientContext context;
      grpc::Status status = workers->CompleteRun(&context, request, &response);
      INFO(status.error_message());
      REQUIRE(status.ok());
    }
  }
};

// Many WatchSweep streams driven by one completion queue on one thread.
class Watchers {
 public:
  Watchers(v1::SweepService::Stub& stub, int64_t sweep_id, int count) : calls_(count) {
    v1::WatchSweepRequest request;
    request.set_sweep_id(sweep_id);
    for (Call& call : calls_) {
      call.context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      call.reader = stub.PrepareAsyncWatchSweep(&call.context, request, &queue_);
      call.reader->StartCall(Tag(&call, kStarted));
    }
    driver_ = std::thread([this] { Drive(); });
  }
  ~Watchers() {
    for (Call& call : calls_) call.context.TryCancel();
    if (driver_.joinable()) driver_.join();
  }

  // Waits until every call has ended (or `timeout`); returns how many have.
  int WaitForAllDone(std::chrono::seconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (Done() < static_cast<int>(calls_.size()) && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Done();
  }
  // Waits until every call has received at least one event.
  bool WaitForFirstEvents(std::chrono::seconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      int with_events = 0;
      for (const Call& call : calls_) with_events += call.events.load() > 0 ? 1 : 0;
      if (with_events == static_cast<int>(calls_.size())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void Join() {
    if (driver_.joinable()) driver_.join();
  }

  struct Call {
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReader<v1::SweepEvent>> reader;
    v1::SweepEvent incoming;
    v1::SweepEvent last;  // the last event read (valid once done)
    std::atomic<int> events{0};
    grpc::Status status;
    std::atomic<bool> done{false};
  };
  std::vector<Call>& calls() { return calls_; }

 private:
  enum Op { kStarted = 0, kRead = 1, kFinished = 2 };
  static void* Tag(Call* call, Op op) {
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(call) | op);
  }
  int Done() const {
    int done = 0;
    for (const Call& call : calls_) done += call.done.load() ? 1 : 0;
    return done;
  }
  void Drive() {
    void* tag = nullptr;
    bool ok = false;
    int remaining = static_cast<int>(calls_.size());
    while (remaining > 0 && queue_.Next(&tag, &ok)) {
      auto bits = reinterpret_cast<uintptr_t>(tag);
      Call* call = reinterpret_cast<Call*>(bits & ~uintptr_t{3});
      const Op op = static_cast<Op>(bits & 3);
      if (op == kFinished) {
        call->done = true;
        --remaining;
        continue;
      }
      if (op == kRead && ok) {
        call->last = call->incoming;
        ++call->events;
      }
      if (ok) {
        call->reader->Read(&call->incoming, Tag(call, kRead));
      } else {
        call->reader->Finish(&call->status, Tag(call, kFinished));
      }
    }
    queue_.Shutdown();
    while (queue_.Next(&tag, &ok)) {
    }
  }

  grpc::CompletionQueue queue_;  // first: the calls' readers use it
  std::vector<Call> calls_;
  std::thread driver_;
};

TEST_CASE("Two hundred watchers of a sweep all see its end while the server's threads stay few",
          "[pg][scheduler]") {
  InProcessScheduler stack;
  constexpr int kRuns = 3;
  constexpr int kWatchers = 200;
  const int64_t sweep_id = stack.Submit(kRuns);
  const int threads_before = ThreadCount();

  Watchers watchers(*stack.sweeps, sweep_id, kWatchers);
  // Every stream is open on the server (it has sent the first snapshot) ...
  REQUIRE(watchers.WaitForFirstEvents(std::chrono::seconds(30)));
  const int threads_watching = ThreadCount();
  // ... and holds no thread of its own: a thread per watch would add 200.
  INFO("threads before " << threads_before << ", with " << kWatchers << " watchers "
                         << threads_watching);
  CHECK(threads_watching - threads_before < 20);

  stack.RunAll(kRuns);
  REQUIRE(watchers.WaitForAllDone(std::chrono::seconds(30)) == kWatchers);
  for (auto& call : watchers.calls()) {
    INFO(call.status.error_message());
    REQUIRE(call.status.ok());
    CHECK(call.events >= 2);  // the first snapshot and the end (changes in between coalesce)
    REQUIRE(call.last.sweep().state() == v1::SWEEP_STATE_SUCCEEDED);
    REQUIRE(call.last.runs_size() == kRuns);
    for (const v1::Run& run : call.last.runs()) CHECK(run.state() == v1::RUN_STATE_SUCCEEDED);
  }
  CHECK(ThreadCount() - threads_before < 20);
}

TEST_CASE("A watch of a finished sweep gets its final state once and ends", "[pg][scheduler]") {
  InProcessScheduler stack;
  const int64_t sweep_id = stack.Submit(2);
  stack.RunAll(2);
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stack.sweeps->WatchSweep(&context, request);
  v1::SweepEvent event;
  int events = 0;
  while (reader->Read(&event)) ++events;
  REQUIRE(reader->Finish().ok());
  CHECK(events == 1);
  CHECK(event.sweep().state() == v1::SWEEP_STATE_SUCCEEDED);
}

TEST_CASE("A watch of an unknown sweep ends with NOT_FOUND", "[pg][scheduler]") {
  InProcessScheduler stack;
  v1::WatchSweepRequest request;
  request.set_sweep_id(424242);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stack.sweeps->WatchSweep(&context, request);
  v1::SweepEvent event;
  CHECK_FALSE(reader->Read(&event));
  CHECK(reader->Finish().error_code() == grpc::StatusCode::NOT_FOUND);
}

TEST_CASE("Stopping the scheduler ends open watches at once, and watchers that left are freed",
          "[pg][scheduler]") {
  InProcessScheduler stack;
  const int64_t sweep_id = stack.Submit(1);
  {
    // Clients that go away: their watches end on the server too (else Shutdown would wait 2 s).
    Watchers leaving(*stack.sweeps, sweep_id, 20);
    REQUIRE(leaving.WaitForFirstEvents(std::chrono::seconds(20)));
  }
  Watchers watchers(*stack.sweeps, sweep_id, 20);
  REQUIRE(watchers.WaitForFirstEvents(std::chrono::seconds(20)));
  const auto start = SteadyClock::now();
  stack.scheduler->Shutdown();
  const double shutdown_s = std::chrono::duration<double>(SteadyClock::now() - start).count();
  REQUIRE(watchers.WaitForAllDone(std::chrono::seconds(10)) == 20);
  for (auto& call : watchers.calls()) {
    CHECK(call.status.error_code() == grpc::StatusCode::CANCELLED);
  }
  // Server::Shutdown waits up to 2 s for calls in flight: the watches must not need it.
  CHECK(shutdown_s < 1.5);
}

}  // namespace
}  // namespace scalelab::scheduler
