// Sweep curves latency: GetSweepCurves over a sweep of `runs` finished runs with `points`
// val_loss points each (and as many train_loss points, which the query must skip), timed
// `repeats` times through Store::GetSweepCurves and through ResultsService.GetSweepCurves over
// a real gRPC socket. One JSON line per path with p50/p95/max milliseconds.
//
//   build/bin/scalelab-curves-bench [--runs=10000] [--points=20] [--repeats=30]
//                                   [--max_points=0]
// Starts the scheduler in-process on a private, durable PostgreSQL under a temporary folder;
// the sweep's runs, attempts and points are written with SQL and COPY (what they hold, not how
// they arrived, is what this measures).
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <pqxx/pqxx>
#include <string>
#include <tuple>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "scalelab/v1/results.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "services/api/grpc_server.h"
#include "services/common/logging.h"

ABSL_FLAG(int, runs, 10000, "runs in the sweep");
ABSL_FLAG(int, points, 20, "val_loss points per run (and as many train_loss points)");
ABSL_FLAG(int, repeats, 30, "timed calls per path");
ABSL_FLAG(int, max_points, 0, "GetSweepCurves max_points (0 = every point)");

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "curves bench: %s\n", what.c_str());
  std::exit(1);
}

// Every run SUCCEEDED after one attempt on one worker, with its points; returns the sweep id.
int64_t CreateSweep(scalelab::services::Store& store, const std::string& url, int runs,
                    int points) {
  scalelab::v1::SweepSpec spec;
  spec.set_name("curves");
  spec.set_project("bench");
  spec.set_kind(scalelab::v1::RUN_KIND_PRETRAIN);
  std::vector<scalelab::services::NewRun> new_runs(runs);
  for (int i = 0; i < runs; ++i) {
    new_runs[i].index = i;
    new_runs[i].config.mutable_model()->set_d_model(64 << (i % 4));
    new_runs[i].config.mutable_train()->set_tokens(1e6 * (1 + i % 5));
    new_runs[i].overrides["model.d_model"] = std::to_string(64 << (i % 4));
    new_runs[i].overrides["train.tokens"] = std::to_string(1e6 * (1 + i % 5));
  }
  auto created = store.CreateSweep(spec, "", "", new_runs);
  if (!created.ok()) Fail(created.status().ToString());
  scalelab::v1::RegisterRequest worker;
  worker.set_name("bench");
  worker.set_cpu_slots(1);
  auto worker_id = store.RegisterWorker(worker);
  if (!worker_id.ok()) Fail(worker_id.status().ToString());
  const int64_t sweep_id = created->sweep.id();

  pqxx::connection conn(url);
  pqxx::work txn(conn);
  txn.exec_params(
      "INSERT INTO run_attempts (run_id, attempt, worker_id, state, started_at, ended_at, "
      "energy_j, energy_source, device_seconds, device_kind, devices) "
      "SELECT id, 1, $2, 'SUCCEEDED', now() - interval '1 hour', now(), 3.6e5, 'rapl', 3600, "
      "'cpu', 1 FROM runs WHERE sweep_id = $1",
      sweep_id, *worker_id);
  txn.exec_params(
      "UPDATE runs SET state = 'SUCCEEDED', attempt = 1, worker_id = $2, step = $3, "
      "n_params = 1000000, n_params_total = 1200000, flops_per_token = 6e6, "
      "tokens_trained = 1e6, flops = 6e12, family = 'gpt' WHERE sweep_id = $1",
      sweep_id, *worker_id, (points - 1) * 100);
  pqxx::result ids = txn.exec_params("SELECT id FROM runs WHERE sweep_id = $1", sweep_id);
  {
    pqxx::stream_to copy(txn, "metric_points",
                         std::vector<std::string>{"run_id", "attempt", "step", "name", "value",
                                                  "tokens", "wall_time_s"});
    for (const auto& row : ids) {
      const int64_t run_id = row[0].as<int64_t>();
      for (int point = 0; point < points; ++point) {
        const int64_t step = point * 100;
        for (const char* name : {"train_loss", "val_loss"}) {
          copy << std::make_tuple(run_id, 1, step, std::string(name), 10.0 / (1 + point),
                                  step * 4096.0, step * 0.1);
        }
      }
    }
    copy.complete();
  }
  txn.exec("ANALYZE runs");
  txn.exec("ANALYZE run_attempts");
  txn.exec("ANALYZE metric_points");
  txn.commit();
  return sweep_id;
}

void Time(const std::string& path, int repeats, int runs, int points,
          const std::function<size_t()>& call) {
  call();  // warm: connections, prepared plans, the server's caches
  std::vector<double> ms;
  size_t returned = 0;
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    returned = call();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(ms.begin(), ms.end());
  auto percentile = [&](double p) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
  };
  std::printf(
      "{\"bench\": \"curves\", \"path\": \"%s\", \"runs\": %d, \"points_per_run\": %d, "
      "\"max_points\": %d, \"points_returned\": %zu, \"repeats\": %d, \"p50_ms\": %.1f, "
      "\"p95_ms\": %.1f, \"max_ms\": %.1f}\n",
      path.c_str(), runs, points, absl::GetFlag(FLAGS_max_points), returned, repeats,
      percentile(0.5), percentile(0.95), ms.back());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  (void)scalelab::services::InitLogging("bench", "warn");
  const int runs = absl::GetFlag(FLAGS_runs);
  const int points = absl::GetFlag(FLAGS_points);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  const int max_points = absl::GetFlag(FLAGS_max_points);
  if (runs < 1 || points < 1 || repeats < 1 || max_points < 0) {
    Fail("--runs, --points and --repeats must be >= 1, --max_points >= 0");
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
  auto scheduler = scalelab::scheduler::Scheduler::Start(options);
  if (!scheduler.ok()) {
    std::filesystem::remove_all(tmpl);
    Fail(scheduler.status().ToString());
  }
  auto& store = *(*scheduler)->store();

  auto setup_start = std::chrono::steady_clock::now();
  const int64_t sweep_id = CreateSweep(store, (*scheduler)->database_url(), runs, points);
  std::fprintf(
      stderr, "curves bench: sweep of %d runs x %d points written in %.1f s\n", runs, points,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count());

  Time("store", repeats, runs, points, [&] {
    auto curves = store.GetSweepCurves(sweep_id, "val_loss", max_points);
    if (!curves.ok()) Fail(curves.status().ToString());
    if (static_cast<int>(curves->size()) != runs) Fail("wrong number of curves");
    size_t returned = 0;
    for (const auto& curve : *curves) returned += curve.points_size();
    return returned;
  });
  auto stub = scalelab::v1::ResultsService::NewStub(
      scalelab::services::MakeChannel(absl::StrCat("127.0.0.1:", (*scheduler)->grpc_port())));
  Time("grpc", repeats, runs, points, [&] {
    scalelab::v1::GetSweepCurvesRequest request;
    request.set_sweep_id(sweep_id);
    request.set_metric("val_loss");
    request.set_max_points(max_points);
    scalelab::v1::GetSweepCurvesResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->GetSweepCurves(&context, request, &response);
    if (!status.ok()) Fail(status.error_message());
    size_t returned = 0;
    for (const auto& curve : response.curves()) returned += curve.points_size();
    return returned;
  });
  (*scheduler)->Shutdown();
  std::filesystem::remove_all(tmpl);
  return 0;
}
