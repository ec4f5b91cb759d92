// Metric ingest throughput, end to end: `clients` concurrent reporters, each with its own gRPC
// channel and its own leased run, send ReportMetrics batches to the real scheduler (started
// in-process on a real port, with its store on a durable private PostgreSQL); every point is
// committed, keyed, before its call returns. Its peers in the same run and database:
//   raw_copy      the same number of rows COPYed into a table with metric_points' key, in one
//                 transaction per stream: the most this PostgreSQL takes in keyed rows;
//   store_direct  the same reporters calling Store::ReportMetrics without gRPC;
//   grpc_resent   every batch of the end-to-end run sent again (the dedupe path of retries).
// One JSON line per path, with points/s and the ratio to raw_copy.
//
//   build/bin/scalelab-ingest-bench [--clients=16] [--batches=200] [--points=100]
//                                   [--raw_streams=1] [--pool_size=16]
//   build/bin/scalelab-ingest-bench --compare_paths   # COPY vs. arrays by batch size
// Starts a private PostgreSQL (durable, as the demo's) under a temporary folder.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpcpp/grpcpp.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/leasing.h"
#include "scheduler/scheduler.h"
#include "scheduler/store_placement_state.h"
#include "services/api/grpc_server.h"
#include "services/common/logging.h"

ABSL_FLAG(int, clients, 16, "concurrent reporters, each with its own channel and run");
ABSL_FLAG(int, batches, 200, "ReportMetrics calls per reporter and path");
ABSL_FLAG(int, points, 100, "points per call (one step, this many metric names)");
ABSL_FLAG(int, raw_streams, 1, "parallel COPY streams of the raw_copy peer");
ABSL_FLAG(int, pool_size, 16, "the scheduler's PostgreSQL connections");
ABSL_FLAG(bool, compare_paths, false,
          "instead: Store::ReportMetrics through COPY vs. through arrays, by batch size");

namespace {

using scalelab::services::Store;
using scalelab::v1::ReportMetricsRequest;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "ingest bench: %s\n", what.c_str());
  std::exit(1);
}

// A run leased to a worker, ready to take reports.
struct LeasedRun {
  int64_t worker_id = 0;
  int64_t run_id = 0;
  int32_t attempt = 0;
};

// A sweep of `n` runs, all leased to one new worker through the scheduler's own lease path
// (placement over a store snapshot, then the store's commit).
std::vector<LeasedRun> LeaseRuns(Store& store, const std::string& name, int n) {
  scalelab::v1::SweepSpec spec;
  spec.set_name(name);
  spec.set_project("bench");
  spec.set_kind(scalelab::v1::RUN_KIND_PRETRAIN);
  std::vector<scalelab::services::NewRun> runs(n);
  for (int i = 0; i < n; ++i) {
    runs[i].index = i;
    runs[i].config.mutable_train()->set_tokens(1e9);
  }
  if (!store.CreateSweep(spec, "", "", runs).ok()) Fail("CreateSweep");
  scalelab::v1::RegisterRequest worker;
  worker.set_name(name);
  worker.set_cpu_slots(n);
  auto worker_id = store.RegisterWorker(worker);
  if (!worker_id.ok()) Fail("RegisterWorker");
  scalelab::scheduler::StorePlacementState placement(&store);
  auto leases = scalelab::scheduler::GrantLeases(placement, store, *worker_id, n, absl::Now(),
                                                 absl::Hours(1), {});
  if (!leases.ok() || static_cast<int>(leases->size()) != n) Fail("GrantLeases");
  std::vector<LeasedRun> leased;
  for (const auto& lease : *leases) {
    leased.push_back({*worker_id, lease.spec().run_id(), lease.spec().attempt()});
  }
  return leased;
}

ReportMetricsRequest Batch(const LeasedRun& run, int step, int points) {
  ReportMetricsRequest request;
  request.set_worker_id(run.worker_id);
  request.set_run_id(run.run_id);
  request.set_attempt(run.attempt);
  for (int i = 0; i < points; ++i) {
    auto* point = request.add_points();
    point->set_step(step);
    point->set_name(absl::StrCat("metric_", i));
    point->set_value(1.0 / (1 + i + step));
    point->set_tokens(step * 4096.0);
    point->set_wall_time_s(step * 0.25);
  }
  return request;
}

// Runs report(client, batch) for every client on its own thread, all released at once, and
// returns the wall seconds until the last one finished.
double Concurrently(int clients, int batches, const std::function<void(int, int)>& report) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int client = 0; client < clients; ++client) {
    threads.emplace_back([&, client] {
      ready.fetch_add(1);
      while (!go.load()) std::this_thread::yield();
      for (int batch = 1; batch <= batches; ++batch) report(client, batch);
    });
  }
  while (ready.load() < clients) std::this_thread::yield();
  auto start = std::chrono::steady_clock::now();
  go.store(true);
  for (auto& thread : threads) thread.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// `rows` keyed rows (run, attempt, name, step as ingest writes them) COPYed into a table with
// metric_points' columns and key and no foreign key, by `streams` connections at once, each in
// one committed transaction. Returns wall seconds.
double RawCopy(const std::string& url, int64_t rows, int streams, int points_per_step) {
  {
    pqxx::connection conn(url);
    pqxx::work txn(conn);
    txn.exec("DROP TABLE IF EXISTS bench_raw_points");
    txn.exec("CREATE TABLE bench_raw_points (LIKE metric_points INCLUDING ALL)");
    txn.commit();
  }
  std::vector<std::unique_ptr<pqxx::connection>> conns;
  for (int i = 0; i < streams; ++i) conns.push_back(std::make_unique<pqxx::connection>(url));
  const int64_t per_stream = rows / streams;
  return Concurrently(streams, 1, [&](int stream, int) {
    pqxx::work txn(*conns[stream]);
    pqxx::stream_to copy(txn, "bench_raw_points",
                         std::vector<std::string>{"run_id", "attempt", "step", "name", "value",
                                                  "tokens", "wall_time_s"});
    for (int64_t row = 0; row < per_stream; ++row) {
      const int64_t step = row / points_per_step;
      const int metric = static_cast<int>(row % points_per_step);
      copy << std::make_tuple(int64_t{stream}, 1, step, absl::StrCat("metric_", metric),
                              1.0 / (1 + metric + step), step * 4096.0, step * 0.25);
    }
    copy.complete();
    txn.commit();
  });
}

void PrintLine(const std::string& path, int64_t points, double seconds, double raw_per_s,
               const std::string& extra) {
  const double per_s = points / seconds;
  const std::string ratio =
      raw_per_s > 0 ? absl::StrFormat(", \"ratio_to_raw_copy\": %.3f", per_s / raw_per_s) : "";
  std::printf(
      "{\"bench\": \"ingest\", \"path\": \"%s\", \"points\": %lld, \"seconds\": %.3f, "
      "\"points_per_s\": %.0f%s%s}\n",
      path.c_str(), static_cast<long long>(points), seconds, per_s, ratio.c_str(), extra.c_str());
  std::fflush(stdout);
}

// Store::ReportMetrics with every batch through COPY, then through arrays, for a few batch
// sizes: where the two cost the same is StoreOptions.copy_min_points.
void ComparePaths(const std::string& url, Store& scheduler_store, int clients, int pool_size) {
  for (int points : {8, 32, 128, 512, 2048, 8192}) {
    for (int copy_min_points : {0, INT_MAX}) {
      scalelab::services::StoreOptions options;
      options.url = url;
      options.pool_size = pool_size;
      options.apply_migrations = false;
      options.copy_min_points = copy_min_points;
      auto store = Store::Open(options);
      if (!store.ok()) Fail(store.status().ToString());
      std::vector<LeasedRun> runs = LeaseRuns(
          scheduler_store, absl::StrCat("compare-", points, "-", copy_min_points), clients);
      const int batches = std::max(20, 20000 / points / clients);
      double seconds = Concurrently(clients, batches, [&](int client, int batch) {
        if (!(*store)
                 ->ReportMetrics(Batch(runs[client], batch, points), absl::Now(), absl::Hours(1))
                 .ok()) {
          Fail("ReportMetrics");
        }
      });
      PrintLine(copy_min_points == 0 ? "store_copy" : "store_arrays",
                int64_t{clients} * batches * points, seconds, 0,
                absl::StrCat(", \"clients\": ", clients, ", \"points_per_call\": ", points));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  (void)scalelab::services::InitLogging("bench", "warn");
  const int clients = absl::GetFlag(FLAGS_clients);
  const int batches = absl::GetFlag(FLAGS_batches);
  const int points = absl::GetFlag(FLAGS_points);
  const int raw_streams = absl::GetFlag(FLAGS_raw_streams);
  if (clients < 1 || batches < 1 || points < 1 || raw_streams < 1) {
    Fail("--clients, --batches, --points and --raw_streams must be >= 1");
  }
  char tmpl[] = "/tmp/scalelab_bench_XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  std::filesystem::permissions(tmpl, std::filesystem::perms(0755));

  scalelab::scheduler::SchedulerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_address = "";
  options.data_dir = tmpl;
  options.lease_ttl = absl::Hours(1);
  options.heartbeat_interval = absl::Minutes(1);
  options.pool_size = absl::GetFlag(FLAGS_pool_size);
  auto scheduler = scalelab::scheduler::Scheduler::Start(options);
  if (!scheduler.ok()) {
    std::filesystem::remove_all(tmpl);
    Fail(scheduler.status().ToString());
  }
  Store& store = *(*scheduler)->store();
  const std::string url = (*scheduler)->database_url();

  if (absl::GetFlag(FLAGS_compare_paths)) {
    ComparePaths(url, store, clients, options.pool_size);
  } else {
    const int64_t total = int64_t{clients} * batches * points;
    const std::string shape =
        absl::StrCat(", \"clients\": ", clients, ", \"points_per_call\": ", points);
    const double raw_seconds = RawCopy(url, total, raw_streams, points);
    const double raw_per_s = total / raw_seconds;
    PrintLine("raw_copy", total, raw_seconds, 0, absl::StrCat(", \"streams\": ", raw_streams));

    // One channel per reporter, as separate workers have; distinct arguments keep gRPC from
    // sharing one connection among them.
    const std::string address = absl::StrCat("127.0.0.1:", (*scheduler)->grpc_port());
    std::vector<std::unique_ptr<scalelab::v1::WorkerService::Stub>> stubs;
    for (int client = 0; client < clients; ++client) {
      grpc::ChannelArguments args;
      args.SetInt("scalelab.bench_reporter", client);
      stubs.push_back(scalelab::v1::WorkerService::NewStub(
          grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
    }
    std::vector<LeasedRun> grpc_runs = LeaseRuns(store, "grpc", clients);
    auto send = [&](int client, int batch, bool resent) {
      scalelab::v1::ReportMetricsResponse response;
      grpc::ClientContext context;
      grpc::Status status = stubs[client]->ReportMetrics(
          &context, Batch(grpc_runs[client], batch, points), &response);
      if (!status.ok()) Fail(status.error_message());
      if (response.stored() != (resent ? 0 : points)) Fail("unexpected stored count");
    };
    double seconds = Concurrently(clients, batches, [&](int c, int b) { send(c, b, false); });
    PrintLine("grpc_end_to_end", total, seconds, raw_per_s, shape);
    seconds = Concurrently(clients, batches, [&](int c, int b) { send(c, b, true); });
    PrintLine("grpc_resent", total, seconds, raw_per_s, shape);

    std::vector<LeasedRun> direct_runs = LeaseRuns(store, "direct", clients);
    seconds = Concurrently(clients, batches, [&](int client, int batch) {
      if (!store
               .ReportMetrics(Batch(direct_runs[client], batch, points), absl::Now(),
                              absl::Hours(1))
               .ok()) {
        Fail("Store::ReportMetrics");
      }
    });
    PrintLine("store_direct", total, seconds, raw_per_s, shape);
  }
  (*scheduler)->Shutdown();
  std::filesystem::remove_all(tmpl);
  return 0;
}
