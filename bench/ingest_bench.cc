// Metric ingest throughput: points per second stored through WorkerService.ReportMetrics over a
// real gRPC socket, and, as its peer in the same run, through Store::ReportMetrics directly (the
// cost of the transport and service layer is the ratio between the two).
//
//   build/bin/scalelab-ingest-bench [--batches=N] [--points=P]
// Starts a private PostgreSQL (durable, as the demo's) under a temporary folder.
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/leasing.h"
#include "scheduler/scheduler.h"
#include "scheduler/store_placement_state.h"
#include "services/api/grpc_server.h"
#include "services/common/logging.h"

ABSL_FLAG(int, batches, 200, "ReportMetrics calls per path");
ABSL_FLAG(int, points, 100, "points per call");

namespace {

using scalelab::v1::ReportMetricsRequest;

// A run leased to a fresh worker, ready to take reports.
struct LeasedRun {
  int64_t worker_id = 0;
  int64_t run_id = 0;
  int32_t attempt = 0;
};

LeasedRun LeaseOne(scalelab::services::Store& store, const std::string& name) {
  scalelab::v1::SweepSpec spec;
  spec.set_name(name);
  spec.set_project("bench");
  spec.set_kind(scalelab::v1::RUN_KIND_PRETRAIN);
  scalelab::services::NewRun run;
  run.config.mutable_train()->set_tokens(1e9);
  if (!store.CreateSweep(spec, "", "", {run}).ok()) std::exit(1);
  scalelab::v1::RegisterRequest worker;
  worker.set_name(name);
  worker.set_cpu_slots(1);
  auto worker_id = store.RegisterWorker(worker);
  // The scheduler's own lease path: placement over a store snapshot, then the store's commit.
  scalelab::scheduler::StorePlacementState placement(&store);
  auto leases = scalelab::scheduler::GrantLeases(placement, store, *worker_id, 1, absl::Now(),
                                                 absl::Hours(1), {});
  if (!leases.ok() || leases->empty()) std::exit(1);
  return {*worker_id, (*leases)[0].spec().run_id(), (*leases)[0].spec().attempt()};
}

ReportMetricsRequest Batch(const LeasedRun& run, int batch, int points) {
  ReportMetricsRequest request;
  request.set_worker_id(run.worker_id);
  request.set_run_id(run.run_id);
  request.set_attempt(run.attempt);
  for (int i = 0; i < points; ++i) {
    auto* point = request.add_points();
    point->set_step(batch);
    point->set_name(absl::StrCat("metric_", i));
    point->set_value(1.0 / (1 + i + batch));
    point->set_tokens(batch * 4096.0);
  }
  return request;
}

template <typename F>
double PointsPerSecond(int batches, int points, F report) {
  auto start = std::chrono::steady_clock::now();
  for (int batch = 1; batch <= batches; ++batch) report(batch);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return batches * points / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  (void)scalelab::services::InitLogging("bench", "warn");
  const int batches = absl::GetFlag(FLAGS_batches);
  const int points = absl::GetFlag(FLAGS_points);
  char tmpl[] = "/tmp/scalelab_bench_XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  std::filesystem::permissions(tmpl, std::filesystem::perms(0755));

  scalelab::scheduler::SchedulerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_address = "";
  options.data_dir = tmpl;
  options.lease_ttl = absl::Hours(1);
  options.heartbeat_interval = absl::Minutes(1);
  auto scheduler = scalelab::scheduler::Scheduler::Start(options);
  if (!scheduler.ok()) {
    std::fprintf(stderr, "%s\n", scheduler.status().ToString().c_str());
    return 1;
  }
  auto& store = *(*scheduler)->store();
  auto stub = scalelab::v1::WorkerService::NewStub(
      scalelab::services::MakeChannel(absl::StrCat("127.0.0.1:", (*scheduler)->grpc_port())));

  LeasedRun direct_run = LeaseOne(store, "direct");
  LeasedRun grpc_run = LeaseOne(store, "grpc");
  double direct = PointsPerSecond(batches, points, [&](int batch) {
    if (!store.ReportMetrics(Batch(direct_run, batch, points), absl::Now(), absl::Hours(1)).ok()) {
      std::exit(1);
    }
  });
  double over_grpc = PointsPerSecond(batches, points, [&](int batch) {
    scalelab::v1::ReportMetricsResponse response;
    grpc::ClientContext context;
    if (!stub->ReportMetrics(&context, Batch(grpc_run, batch, points), &response).ok()) {
      std::exit(1);
    }
  });
  // Re-sending stored batches: the dedupe path every worker retry takes.
  double resent = PointsPerSecond(batches, points, [&](int batch) {
    scalelab::v1::ReportMetricsResponse response;
    grpc::ClientContext context;
    if (!stub->ReportMetrics(&context, Batch(grpc_run, batch, points), &response).ok() ||
        response.stored() != 0) {
      std::exit(1);
    }
  });
  std::printf("metric ingest, %d batches x %d points, one client\n", batches, points);
  std::printf("  Store::ReportMetrics (peer)      %10.0f points/s\n", direct);
  std::printf("  gRPC ReportMetrics               %10.0f points/s  (%.2fx of peer)\n", over_grpc,
              over_grpc / direct);
  std::printf("  gRPC ReportMetrics, re-sent      %10.0f points/s  (%.2fx of peer)\n", resent,
              resent / direct);
  (*scheduler)->Shutdown();
  std::filesystem::remove_all(tmpl);
  return 0;
}
