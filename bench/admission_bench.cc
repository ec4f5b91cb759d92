// Admission throughput and decision latency with the real PostgreSQL: W workers of G GPUs,
// P pending 1-GPU runs, the scheduler's own admission pass (Scheduler::AdmitOnce: snapshot ->
// placement -> one-statement AdmitRuns). First the cold pass that fills the empty cluster, then
// `--rounds` steady passes, each after `--churn` admitted runs finished (set SUCCEEDED directly
// in SQL, as if their attempts ended). Prints admissions/s and pass-duration percentiles; the
// decision latency of a run is at most one cycle period plus one pass.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "scheduler/scheduler.h"
#include "services/common/logging.h"

ABSL_FLAG(int, workers, 5000, "simulated workers");
ABSL_FLAG(int, gpus_per_worker, 8, "GPUs per worker");
ABSL_FLAG(int, pending, 100000, "pending 1-GPU runs");
ABSL_FLAG(int, rounds, 50, "steady-state passes");
ABSL_FLAG(int, churn, 200, "admitted runs that finish before each steady pass");

namespace {

[[noreturn]] void Fail(const std::string& message) {
  std::fprintf(stderr, "admission_bench: %s\n", message.c_str());
  std::exit(1);
}

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  (void)scalelab::services::InitLogging("bench", "warn");
  const int workers = absl::GetFlag(FLAGS_workers);
  const int gpus = absl::GetFlag(FLAGS_gpus_per_worker);
  const int pending = absl::GetFlag(FLAGS_pending);
  const int rounds = absl::GetFlag(FLAGS_rounds);
  const int churn = absl::GetFlag(FLAGS_churn);
  if (workers < 1 || gpus < 1 || pending < 1 || rounds < 0 || churn < 1) {
    Fail("--workers, --gpus_per_worker, --pending and --churn must be >= 1, --rounds >= 0");
  }
  char tmpl[] = "/tmp/scalelab_admission_bench_XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  std::filesystem::permissions(tmpl, std::filesystem::perms(0755));

  scalelab::scheduler::SchedulerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_address = "";
  options.data_dir = tmpl;
  options.run_admission = false;  // passes are driven below
  options.run_fitter = false;
  options.lease_ttl = absl::Hours(1);
  options.heartbeat_interval = absl::Minutes(1);
  options.reap_interval = absl::Hours(1);
  auto scheduler = scalelab::scheduler::Scheduler::Start(options);
  if (!scheduler.ok()) Fail(scheduler.status().ToString());
  scalelab::services::Store& store = *(*scheduler)->store();
  pqxx::connection raw((*scheduler)->database_url());

  // Workers in one statement: the registration path is not what is measured here.
  scalelab::v1::RegisterRequest inventory;
  inventory.set_name("sim");
  inventory.set_hostname("sim");
  inventory.set_cpu_slots(gpus * 2);
  for (int gpu_idx = 0; gpu_idx < gpus; ++gpu_idx) {
    scalelab::v1::GpuInfo* gpu = inventory.add_gpus();
    gpu->set_index(gpu_idx);
    gpu->set_name("NVIDIA H200");
    gpu->set_memory_bytes(int64_t{141} << 30);
  }
  std::string inventory_json;
  if (!google::protobuf::util::MessageToJsonString(inventory, &inventory_json).ok()) {
    Fail("inventory to JSON");
  }
  {
    pqxx::work txn(raw);
    txn.exec_params(
        "INSERT INTO workers (name, hostname, cpu_slots, gpus, inventory, state) "
        "SELECT 'sim-' || g, 'sim', $2, $3, $4::jsonb, 'ALIVE' FROM generate_series(1, $1) g",
        workers, gpus * 2, gpus, inventory_json);
    txn.commit();
  }
  auto setup_start = std::chrono::steady_clock::now();
  scalelab::v1::SweepSpec spec;
  spec.set_name("bench");
  spec.set_project("bench");
  spec.set_kind(scalelab::v1::RUN_KIND_PRETRAIN);
  spec.set_max_attempts(3);
  std::vector<scalelab::services::NewRun> runs(pending);
  for (int run_idx = 0; run_idx < pending; ++run_idx) {
    runs[run_idx].index = run_idx;
    runs[run_idx].config.mutable_train()->set_tokens(1000);
    runs[run_idx].config.mutable_resources()->set_gpus(1);
  }
  auto created = store.CreateSweep(spec, "", "", runs);
  if (!created.ok()) Fail(created.status().ToString());
  std::printf("setup: %d workers x %d GPUs, %d pending runs stored in %.2f s\n", workers, gpus,
              pending, Seconds(std::chrono::steady_clock::now() - setup_start));

  auto cold = (*scheduler)->AdmitOnce();
  if (!cold.ok()) Fail(cold.status().ToString());
  std::printf("cold pass: %zu admitted of %d considered in %.3f s (%.0f admissions/s)\n",
              cold->admitted.size(), cold->considered, absl::ToDoubleSeconds(cold->duration),
              static_cast<double>(cold->admitted.size()) / absl::ToDoubleSeconds(cold->duration));

  std::vector<double> pass_s;
  int64_t admitted = 0;
  double total_s = 0;
  for (int round = 0; round < rounds; ++round) {
    {
      pqxx::work txn(raw);
      txn.exec_params(
          "UPDATE runs SET state = 'SUCCEEDED' WHERE id IN (SELECT id FROM runs "
          "WHERE state = 'ADMITTED' ORDER BY random() LIMIT $1)",
          churn);
      txn.commit();
    }
    auto pass = (*scheduler)->AdmitOnce();
    if (!pass.ok()) Fail(pass.status().ToString());
    admitted += static_cast<int64_t>(pass->admitted.size());
    const double seconds = absl::ToDoubleSeconds(pass->duration);
    total_s += seconds;
    pass_s.push_back(seconds);
  }
  if (rounds > 0) {
    std::printf(
        "steady passes: %d rounds, %d freed GPUs each: %lld admitted in %.3f s of passes "
        "(%.0f admissions/s); pass duration p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
        rounds, churn, static_cast<long long>(admitted), total_s,
        static_cast<double>(admitted) / total_s, 1e3 * Percentile(pass_s, 0.5),
        1e3 * Percentile(pass_s, 0.99), 1e3 * Percentile(pass_s, 1.0));
  }
  (*scheduler)->Shutdown();
  std::filesystem::remove_all(tmpl);
  return 0;
}
