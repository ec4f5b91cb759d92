// Worker shutdown over real processes: the scheduler in-process on port 0 over a fresh
// PostgreSQL, `scalelab-worker` as a child process running a shell script in place of
// scalelab-train. A worker stopped with SIGTERM drains: it hands its runs back, and none is
// admitted to it again.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scalelab/v1/sweep.grpc.pb.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "services/api/grpc_server.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string MakeTempDir() {
  char pattern[] = "/tmp/scalelab_drain_XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  return pattern;
}

struct Stack {
  std::string dir = MakeTempDir();
  std::string url = scalelab::testing::FreshDatabaseUrl();
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<v1::SweepService::Stub> sweeps;
  std::unique_ptr<v1::WorkerService::Stub> workers;

  Stack() {
    SchedulerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_address = "";
    options.database_url = url;
    options.run_fitter = false;
    options.reap_interval = absl::Milliseconds(200);
    auto started = Scheduler::Start(options);
    INFO(started.status().ToString());
    REQUIRE(started.ok());
    scheduler = *std::move(started);
    auto channel = services::MakeChannel(absl::StrCat("127.0.0.1:", scheduler->grpc_port()));
    sweeps = v1::SweepService::NewStub(channel);
    workers = v1::WorkerService::NewStub(channel);
  }
  ~Stack() {
    scheduler->Shutdown();
    std::error_code error;
    std::filesystem::remove_all(dir, error);
  }

  int64_t Submit(int runs) {
    std::string seeds;
    for (int seed = 1; seed <= runs; ++seed) absl::StrAppend(&seeds, seed > 1 ? ", " : "", seed);
    v1::SubmitSweepRequest request;
    request.set_manifest_yaml(absl::StrCat(
        "name: drained\nproject: tests\nkind: pretrain\nbase:\n"
        "  model: {family: transformer, d_model: 8, n_layers: 1, n_heads: 1, seq_len: 16}\n"
        "  data: {sources: {corpus: data/corpus}}\n"
        "  train: {tokens: 64, batch_tokens: 64, lr: 1e-2}\n"
        "  resources: {cpus: 1}\n"
        "sweep:\n  grid: {train.seed: [",
        seeds, "]}\n"));
    v1::SubmitSweepResponse response;
    grpc::ClientContext context;
    grpc::Status status = sweeps->SubmitSweep(&context, request, &response);
    INFO(status.error_message());
    REQUIRE(status.ok());
    return response.sweep().id();
  }

  std::vector<v1::Run> Runs(int64_t sweep_id) {
    v1::ListRunsRequest request;
    request.set_sweep_id(sweep_id);
    v1::ListRunsResponse response;
    grpc::ClientContext context;
    REQUIRE(sweeps->ListRuns(&context, request, &response).ok());
    return {response.runs().begin(), response.runs().end()};
  }

  bool WaitFor(int64_t sweep_id, const std::function<bool(const std::vector<v1::Run>&)>& done,
               std::chrono::seconds timeout) {
    const auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      if (done(Runs(sweep_id))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  // A single value of a SQL query.
  std::string Query(const std::string& sql) {
    pqxx::connection conn(url);
    pqxx::nontransaction txn(conn);
    pqxx::result rows = txn.exec(sql);
    return rows.empty() || rows[0][0].is_null() ? "" : rows[0][0].as<std::string>();
  }
};

// A scalelab-worker child process; SIGKILLed by the destructor if still running.
struct WorkerProcess {
  pid_t pid = -1;
  std::string log;

  WorkerProcess(const Stack& stack, const std::string& name, const std::string& trainer) {
    log = absl::StrCat(stack.dir, "/", name, ".log");
    std::vector<std::string> args = {
        SCALELAB_WORKER_BIN,
        absl::StrCat("--scheduler=127.0.0.1:", stack.scheduler->grpc_port()),
        absl::StrCat("--name=", name),
        "--cpu_slots=2",
        absl::StrCat("--trainer=", trainer),
        "--fork_server=false",
        absl::StrCat("--work_dir=", stack.dir, "/", name),
        absl::StrCat("--data_root=", stack.dir),
        "--metrics_listen=",
        "--min_free_disk_bytes=0"};
    pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  // SIGTERM, then waits for the exit (at most `timeout`). True when it exited 0.
  bool Terminate(std::chrono::seconds timeout) {
    kill(pid, SIGTERM);
    const auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::string Log() const {
    std::ifstream in(log);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ~WorkerProcess() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

bool AllIn(const std::vector<v1::Run>& runs, v1::RunState state) {
  if (runs.empty()) return false;
  for (const v1::Run& run : runs) {
    if (run.state() != state) return false;
  }
  return true;
}

TEST_CASE("A worker stopped with SIGTERM drains: its runs go back and are not admitted to it",
          "[pg][scheduler]") {
  Stack stack;
  // Trains until told to stop (SIGTERM) while $DIR/fast does not exist; then succeeds at once.
  const std::string trainer = stack.dir + "/trainer.sh";
  const std::string fast = stack.dir + "/fast";
  std::ofstream(trainer) << "#!/bin/sh\n[ -e " << fast
                         << " ] && exit 0\n"
                            "trap 'kill $child 2>/dev/null; exit 143' TERM\n"
                            "sleep 60 & child=$!\nwait $child\n";
  REQUIRE(chmod(trainer.c_str(), 0755) == 0);

  const int64_t sweep_id = stack.Submit(2);
  WorkerProcess first(stack, "first", trainer);
  if (!stack.WaitFor(
          sweep_id, [](const auto& runs) { return AllIn(runs, v1::RUN_STATE_RUNNING); },
          std::chrono::seconds(30))) {
    FAIL("runs not RUNNING; first worker's log:\n" << first.Log());
  }
  const std::string first_id = stack.Query("SELECT id FROM workers WHERE name = 'first'");

  if (!first.Terminate(std::chrono::seconds(20))) {
    FAIL("the first worker did not stop cleanly; its log:\n" << first.Log());
  }
  // Handed back (PREEMPTED: PENDING at once) and, with no other worker, left PENDING: the
  // stopped worker had free slots as it reported them, but it is DRAINING.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // several admission passes
  CHECK(AllIn(stack.Runs(sweep_id), v1::RUN_STATE_PENDING));
  CHECK(stack.Query("SELECT state FROM workers WHERE id = " + first_id) == "DRAINING");
  CHECK(stack.Query("SELECT count(*) FROM run_transitions WHERE to_state = 'ADMITTED' AND "
                    "reason LIKE 'admitted to worker " +
                    first_id + "%'") == "2");  // the first admissions only

  // Another worker takes them at once (no lease had to expire), as a second attempt each.
  std::ofstream(fast) << "1\n";
  WorkerProcess second(stack, "second", trainer);
  if (!stack.WaitFor(
          sweep_id, [](const auto& runs) { return AllIn(runs, v1::RUN_STATE_SUCCEEDED); },
          std::chrono::seconds(30))) {
    FAIL("runs not SUCCEEDED; second worker's log:\n" << second.Log());
  }
  for (const v1::Run& run : stack.Runs(sweep_id)) CHECK(run.attempt() == 2);
}

TEST_CASE("Drain sends a worker's admitted runs back to PENDING at once", "[pg][scheduler]") {
  Stack stack;
  v1::RegisterRequest registration;
  registration.set_name("idle");
  registration.set_hostname("test");
  registration.set_cpu_slots(1);
  v1::RegisterResponse registered;
  {
    grpc::ClientContext context;
    REQUIRE(stack.workers->Register(&context, registration, &registered).ok());
  }
  const int64_t sweep_id = stack.Submit(1);
  // Admitted to the only worker, which never leases it.
  REQUIRE(stack.WaitFor(
      sweep_id, [](const auto& runs) { return AllIn(runs, v1::RUN_STATE_ADMITTED); },
      std::chrono::seconds(10)));

  v1::DrainRequest request;
  request.set_worker_id(registered.worker_id());
  request.set_reason("test");
  v1::DrainResponse response;
  {
    grpc::ClientContext context;
    REQUIRE(stack.workers->Drain(&context, request, &response).ok());
  }
  CHECK(response.requeued() == 1);
  CHECK(AllIn(stack.Runs(sweep_id), v1::RUN_STATE_PENDING));
  // Idempotent, and nothing is admitted to it any more.
  {
    grpc::ClientContext context;
    REQUIRE(stack.workers->Drain(&context, request, &response).ok());
  }
  CHECK(response.requeued() == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  CHECK(AllIn(stack.Runs(sweep_id), v1::RUN_STATE_PENDING));

  // An unknown worker is named.
  request.set_worker_id(987654);
  grpc::ClientContext context;
  grpc::Status status = stack.workers->Drain(&context, request, &response);
  CHECK(status.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(status.error_message(), Catch::Contains("987654"));
}

}  // namespace
}  // namespace scalelab::scheduler
