// The control plane over real processes and a real PostgreSQL: two scheduler daemons on one
// database (the leader lease), and a PostgreSQL restart under a running store and listener.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/retry_policy.h"
#include "services/store/change_listener.h"
#include "services/store/embedded_postgres.h"
#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

using Clock = std::chrono::steady_clock;

// A scalelab-scheduler child process; SIGKILLed by the destructor if still running.
struct Daemon {
  pid_t pid = -1;
  int grpc_port = 0;
  std::string log;

  Daemon(const std::string& url, const std::string& id, const std::string& dir) {
    log = absl::StrCat(dir, "/", id, ".log");
    std::string port_file = absl::StrCat(dir, "/", id, ".port");
    std::vector<std::string> args = {SCALELAB_SCHEDULER_BIN,
                                     absl::StrCat("--database_url=", url),
                                     "--listen=127.0.0.1:0",
                                     "--metrics_listen=",
                                     absl::StrCat("--port_file=", port_file),
                                     absl::StrCat("--scheduler_id=", id),
                                     "--leader_ttl_s=2",
                                     "--lease_ttl_s=3",
                                     "--heartbeat_interval_s=1",
                                     "--fit_interval_s=60"};
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
    for (int tries = 0; tries < 300 && grpc_port == 0; ++tries) {
      std::ifstream in(port_file);
      if (!(in >> grpc_port)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO("scheduler " << id << " log: " << log);
    REQUIRE(grpc_port > 0);
  }
  void Kill() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
  ~Daemon() { Kill(); }
};

std::string LeaderHolder(pqxx::connection& conn) {
  pqxx::work txn(conn);
  pqxx::result rows =
      txn.exec("SELECT holder FROM scheduler_leader WHERE id = 1 AND expires_at > now()");
  return rows.empty() ? "" : rows[0][0].as<std::string>();
}

std::unique_ptr<v1::WorkerService::Stub> WorkerStub(int port) {
  return v1::WorkerService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

int64_t Register(v1::WorkerService::Stub& stub, const std::string& name) {
  grpc::ClientContext context;
  v1::RegisterRequest request;
  request.set_name(name);
  request.set_hostname("test");
  request.set_cpu_slots(1);
  v1::RegisterResponse response;
  grpc::Status status = stub.Register(&context, request, &response);
  REQUIRE(status.ok());
  return response.worker_id();
}

// Polls LeaseRuns as a worker does (up to 5 s): a run is handed out once the LEADER's admission
// pass admitted it to this worker, and the process asked may be a standby.
std::vector<v1::Lease> Lease(v1::WorkerService::Stub& stub, int64_t worker_id,
                             std::chrono::seconds wait = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    grpc::ClientContext context;
    v1::LeaseRunsRequest request;
    request.set_worker_id(worker_id);
    request.set_free_slots(1);
    v1::LeaseRunsResponse response;
    grpc::Status status = stub.LeaseRuns(&context, request, &response);
    INFO(status.error_message());
    REQUIRE(status.ok());
    if (response.leases_size() > 0 || std::chrono::steady_clock::now() > deadline) {
      return {response.leases().begin(), response.leases().end()};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void Complete(v1::WorkerService::Stub& stub, int64_t worker_id, const v1::Lease& lease) {
  grpc::ClientContext context;
  v1::CompleteRunRequest request;
  request.set_worker_id(worker_id);
  request.set_run_id(lease.spec().run_id());
  request.set_attempt(lease.spec().attempt());
  request.set_lease_token(lease.spec().lease_token());
  request.set_succeeded(true);
  v1::CompleteRunResponse response;
  grpc::Status status = stub.CompleteRun(&context, request, &response);
  INFO(status.error_message());
  REQUIRE(status.ok());
  CHECK(response.state() == v1::RUN_STATE_SUCCEEDED);
}

std::string MakeTempDir() {
  char pattern[] = "/tmp/scalelab_ctl_XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  return pattern;
}

TEST_CASE("A standby scheduler takes over when the leader is killed, and a sweep completes once",
          "[pg][slow]") {
  const std::string url = scalelab::testing::FreshDatabaseUrl();
  const std::string dir = MakeTempDir();
  services::StoreOptions store_options;
  store_options.url = url;
  auto store = services::Store::Open(store_options);
  REQUIRE(store.ok());

  auto a = std::make_unique<Daemon>(url, "A", dir);
  auto b = std::make_unique<Daemon>(url, "B", dir);
  pqxx::connection conn(url);
  // A started first and took the lease; B stands by (it would renew nothing while A lives).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  REQUIRE(LeaderHolder(conn) == "A");

  v1::SweepSpec spec;
  spec.set_name("failover");
  spec.set_project("tests");
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  spec.set_max_attempts(2);
  std::vector<services::NewRun> runs(2);
  for (int run_idx = 0; run_idx < 2; ++run_idx) {
    runs[run_idx].index = run_idx;
    runs[run_idx].config.mutable_train()->set_tokens(1000);
  }
  auto created = (*store)->CreateSweep(spec, "", "", runs);
  REQUIRE(created.ok());
  const int64_t sweep_id = created->sweep.id();

  // A worker talks to the standby B only: reports are safe on any process.
  auto worker = WorkerStub(b->grpc_port);
  const int64_t first = Register(*worker, "w1");
  std::vector<v1::Lease> leased = Lease(*worker, first);
  REQUIRE(leased.size() == 1);
  Complete(*worker, first, leased[0]);
  // The second run is leased and then abandoned: only a leader's reaper can move it on.
  std::vector<v1::Lease> abandoned = Lease(*worker, first);
  REQUIRE(abandoned.size() == 1);

  const auto killed_at = Clock::now();
  a->Kill();
  std::string holder;
  while (holder != "B" && Clock::now() - killed_at < std::chrono::seconds(15)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    holder = LeaderHolder(conn);
  }
  const double takeover_s = std::chrono::duration<double>(Clock::now() - killed_at).count();
  INFO("takeover after " << takeover_s << " s; B's log: " << b->log);
  REQUIRE(holder == "B");
  CHECK(takeover_s < 2 + 1 + 1.5);  // ttl + renew interval + slack

  // B's reaper expires the abandoned lease (3 s ttl); a new worker then finishes the run.
  const int64_t second = Register(*worker, "w2");
  std::vector<v1::Lease> retried;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (retried.empty() && Clock::now() < deadline) {
    // Heartbeats keep w2 alive; w1 stays silent and is declared lost.
    grpc::ClientContext context;
    v1::HeartbeatRequest heartbeat;
    heartbeat.set_worker_id(second);
    v1::HeartbeatResponse ignored;
    worker->Heartbeat(&context, heartbeat, &ignored);
    retried = Lease(*worker, second, std::chrono::seconds(0));
    if (retried.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  REQUIRE(retried.size() == 1);
  CHECK(retried[0].spec().run_id() == abandoned[0].spec().run_id());
  CHECK(retried[0].spec().attempt() == abandoned[0].spec().attempt() + 1);
  Complete(*worker, second, retried[0]);

  auto sweep = (*store)->GetSweep(sweep_id);
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_SUCCEEDED);
  pqxx::work txn(conn);
  // Exactly once: one SUCCEEDED transition per run, and one NODE_LOST expiry of the abandoned one.
  pqxx::row counts = txn.exec_params1(
      "SELECT count(*) FILTER (WHERE t.to_state = 'SUCCEEDED'), "
      "       count(DISTINCT t.run_id) FILTER (WHERE t.to_state = 'SUCCEEDED'), "
      "       count(*) FILTER (WHERE t.reason LIKE 'NODE_LOST%') "
      "FROM run_transitions t JOIN runs r ON r.id = t.run_id WHERE r.sweep_id = $1",
      sweep_id);
  CHECK(counts[0].as<int>() == 2);
  CHECK(counts[1].as<int>() == 2);
  CHECK(counts[2].as<int>() == 1);
}

TEST_CASE("The store and the change listener recover when PostgreSQL restarts", "[pg]") {
  const std::string dir = MakeTempDir();
  services::EmbeddedPostgresOptions pg_options;
  pg_options.data_dir = dir;
  pg_options.durable = false;
  auto pg = services::EmbeddedPostgres::Start(pg_options);
  REQUIRE(pg.ok());
  services::StoreOptions store_options;
  store_options.url = (*pg)->ConnectionUrl();
  store_options.pool_size = 4;
  auto store = services::Store::Open(store_options);
  REQUIRE(store.ok());
  std::atomic<int> reconnects{0};
  std::atomic<int> pending_seen{0};
  auto listener = services::ChangeListener::Start(
      store_options.url,
      [&](const services::RunChange& change) {
        if (change.sweep_id == 0) ++reconnects;
        if (change.to_state == "PENDING") ++pending_seen;
      },
      absl::Milliseconds(100));
  REQUIRE(listener.ok());

  v1::SweepSpec spec;
  spec.set_name("restart");
  spec.set_project("tests");
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  std::vector<services::NewRun> runs(3);
  for (int run_idx = 0; run_idx < 3; ++run_idx) {
    runs[run_idx].index = run_idx;
    runs[run_idx].config.mutable_train()->set_tokens(1000);
  }
  // Every pool connection is opened before the restart, so every one of them breaks.
  std::vector<std::thread> users;
  for (int user = 0; user < 4; ++user) {
    users.emplace_back([&] { REQUIRE((*store)->CreateSweep(spec, "", "", runs).ok()); });
  }
  for (std::thread& user : users) user.join();
  const auto notified_by = Clock::now() + std::chrono::seconds(5);
  while (pending_seen.load() < 4 && Clock::now() < notified_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(pending_seen.load() == 4);  // one notification per committed sweep of PENDING runs

  REQUIRE((*pg)->Stop().ok());
  auto down = (*store)->GetSweep(1);
  CHECK(down.status().code() == absl::StatusCode::kUnavailable);
  pg = services::EmbeddedPostgres::Start(pg_options);
  REQUIRE(pg.ok());
  REQUIRE((*pg)->ConnectionUrl() == store_options.url);

  // The first call after the restart already succeeds: the pool drops its dead connections.
  auto sweeps = (*store)->ListSweeps("tests", 10);
  INFO(sweeps.status().ToString());
  REQUIRE(sweeps.ok());
  CHECK(sweeps->size() == 4);
  auto created = (*store)->CreateSweep(spec, "", "", runs);
  REQUIRE(created.ok());
  const auto reconnected_by = Clock::now() + std::chrono::seconds(10);
  while ((reconnects.load() == 0 || pending_seen.load() < 5) && Clock::now() < reconnected_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(reconnects.load() >= 1);
  // The listener LISTENs again: a sweep committed after the restart is notified... unless it
  // committed before the listener was back; a second one after the reconnect surely is.
  if (pending_seen.load() < 5) {
    REQUIRE((*store)->CreateSweep(spec, "", "", runs).ok());
    const auto by = Clock::now() + std::chrono::seconds(5);
    while (pending_seen.load() < 5 && Clock::now() < by) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  CHECK(pending_seen.load() >= 5);
  listener->reset();
  store->reset();
  REQUIRE((*pg)->Stop().ok());
  std::system(absl::StrCat("rm -rf ", dir).c_str());
}

}  // namespace
}  // namespace scalelab::scheduler
