// Admission throughput and decision latency with the real PostgreSQL: W workers of G GPUs,
// P pending 1-GPU runs, the scheduler's own admission pass (Scheduler::AdmitOnce: snapshot ->
// placement -> one-statement AdmitRuns).
//
// Cold: passes back to back until the empty cluster is full (or nothing is left to admit);
// admissions/s there is the pass loop's capacity.
// Steady: for --duration_s, a churn thread finishes --churn_per_s admitted runs (random ones,
// in a batch every --churn_batch_ms: state SUCCEEDED and the transition row, one committed
// statement, as if their attempts ended) while the pass loop runs passes back to back, as a
// woken admitter would under constant load.
// Decision latency, per admission: from the commit of the churn batch that freed the GPU the run
// was admitted onto, to the commit of the pass that admitted it (AdmitOnce returns after
// AdmitRuns committed). All GPUs and runs are alike, so freed GPUs are matched to admissions
// oldest first. Runs waiting in the backlog before a GPU freed are not counted from their
// submission: with 100,000 queued they wait for capacity, not for the scheduler.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>
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
ABSL_FLAG(double, duration_s, 10, "length of the steady phase, seconds");
ABSL_FLAG(int, churn_per_s, 2500, "admitted runs finished per second in the steady phase");
ABSL_FLAG(int, churn_batch_ms, 20, "the churn thread finishes a batch this often");

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
  const double duration_s = absl::GetFlag(FLAGS_duration_s);
  const int churn_per_s = absl::GetFlag(FLAGS_churn_per_s);
  const int churn_batch_ms = absl::GetFlag(FLAGS_churn_batch_ms);
  if (workers < 1 || gpus < 1 || pending < 1 || duration_s < 0 || churn_per_s < 1 ||
      churn_batch_ms < 1) {
    Fail(
        "--workers, --gpus_per_worker, --pending, --churn_per_s and --churn_batch_ms must be "
        ">= 1, --duration_s >= 0");
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

  using Clock = std::chrono::steady_clock;
  std::vector<double> pass_ms, read_ms, decide_ms, write_ms;
  auto record = [&](const scalelab::scheduler::AdmissionPass& pass) {
    pass_ms.push_back(1e3 * absl::ToDoubleSeconds(pass.duration));
    read_ms.push_back(1e3 * absl::ToDoubleSeconds(pass.read_duration));
    decide_ms.push_back(1e3 * absl::ToDoubleSeconds(pass.decide_duration));
    write_ms.push_back(1e3 * absl::ToDoubleSeconds(pass.write_duration));
  };
  auto print_passes = [&](const char* phase) {
    std::printf(
        "%s: %zu passes; pass ms p50 %.1f p99 %.1f max %.1f; of which read p50 %.1f p99 %.1f, "
        "decide p50 %.1f p99 %.1f, write p50 %.1f p99 %.1f\n",
        phase, pass_ms.size(), Percentile(pass_ms, 0.5), Percentile(pass_ms, 0.99),
        Percentile(pass_ms, 1.0), Percentile(read_ms, 0.5), Percentile(read_ms, 0.99),
        Percentile(decide_ms, 0.5), Percentile(decide_ms, 0.99), Percentile(write_ms, 0.5),
        Percentile(write_ms, 0.99));
    pass_ms.clear();
    read_ms.clear();
    decide_ms.clear();
    write_ms.clear();
  };

  // Cold: fill the empty cluster.
  const int64_t capacity = std::min<int64_t>(int64_t{workers} * gpus, pending);
  int64_t cold_admitted = 0;
  const auto cold_start = Clock::now();
  while (cold_admitted < capacity) {
    auto pass = (*scheduler)->AdmitOnce();
    if (!pass.ok()) Fail(pass.status().ToString());
    record(*pass);
    if (pass->admitted.empty()) break;
    cold_admitted += static_cast<int64_t>(pass->admitted.size());
  }
  const double cold_s = Seconds(Clock::now() - cold_start);
  std::printf("cold fill: %lld admitted in %.3f s (%.0f admissions/s)\n",
              static_cast<long long>(cold_admitted), cold_s,
              static_cast<double>(cold_admitted) / cold_s);
  print_passes("cold fill");

  if (duration_s > 0) {
    std::mutex mu;
    std::deque<std::pair<Clock::time_point, int64_t>> freed;  // (commit time, GPUs), oldest first
    std::atomic<bool> stop{false};
    std::atomic<int64_t> churned{0};
    std::thread churn([&] {
      pqxx::connection conn((*scheduler)->database_url());
      const int per_batch = std::max(1, churn_per_s * churn_batch_ms / 1000);
      // Runs admitted to the workers from a random one on (runs_admitted_idx): a random sample
      // of all ADMITTED runs (ORDER BY random()) sorted 40,000 rows a batch and could not keep
      // up with the offered rate.
      std::mt19937_64 rng(42);
      std::uniform_int_distribution<int64_t> pick(0, std::max(0, workers - per_batch / gpus - 1));
      const int64_t first_worker =
          pqxx::work(conn).exec("SELECT min(id) FROM workers")[0][0].as<int64_t>();
      auto next = Clock::now();
      while (!stop.load()) {
        next += std::chrono::milliseconds(churn_batch_ms);
        pqxx::work txn(conn);
        pqxx::result done = txn.exec_params(
            "WITH f AS (UPDATE runs SET state = 'SUCCEEDED', admitted_worker_id = NULL, "
            "  admitted_gpu_indices = NULL, admitted_cpu_slots = NULL, admitted_at = NULL, "
            "  updated_at = now() WHERE id IN (SELECT id FROM runs WHERE state = 'ADMITTED' "
            "  AND admitted_worker_id >= $2 ORDER BY admitted_worker_id, id LIMIT $1 "
            "  FOR UPDATE SKIP LOCKED) RETURNING id, attempt) "
            "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
            "SELECT id, attempt, 'ADMITTED', 'SUCCEEDED', 'bench churn' FROM f RETURNING run_id",
            per_batch, first_worker + static_cast<int64_t>(pick(rng)));
        txn.commit();
        const auto committed = Clock::now();
        {
          std::lock_guard<std::mutex> lock(mu);
          freed.emplace_back(committed, static_cast<int64_t>(done.size()));
        }
        churned += static_cast<int64_t>(done.size());
        std::this_thread::sleep_until(next);
      }
    });
    std::vector<double> latency_ms;
    int64_t steady_admitted = 0;
    const auto steady_start = Clock::now();
    while (Seconds(Clock::now() - steady_start) < duration_s) {
      auto pass = (*scheduler)->AdmitOnce();
      if (!pass.ok()) Fail(pass.status().ToString());
      const auto committed = Clock::now();
      record(*pass);
      int64_t matched = static_cast<int64_t>(pass->admitted.size());
      steady_admitted += matched;
      std::lock_guard<std::mutex> lock(mu);
      while (matched > 0 && !freed.empty()) {
        auto& [at, count] = freed.front();
        const int64_t take = std::min(matched, count);
        const double ms = 1e3 * Seconds(committed - at);
        for (int64_t i = 0; i < take; ++i) latency_ms.push_back(ms);
        matched -= take;
        count -= take;
        if (count == 0) freed.pop_front();
      }
    }
    const double steady_s = Seconds(Clock::now() - steady_start);
    stop = true;
    churn.join();
    std::printf(
        "steady: %.1f s, %lld runs finished by churn (%.0f/s offered), %lld admitted "
        "(%.0f admissions/s); decision latency (GPU freed -> ADMITTED committed) over %zu "
        "admissions: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
        steady_s, static_cast<long long>(churned.load()),
        static_cast<double>(churned.load()) / steady_s, static_cast<long long>(steady_admitted),
        static_cast<double>(steady_admitted) / steady_s, latency_ms.size(),
        Percentile(latency_ms, 0.5), Percentile(latency_ms, 0.99), Percentile(latency_ms, 1.0));
    print_passes("steady");
  }
  (*scheduler)->Shutdown();
  std::filesystem::remove_all(tmpl);
  return 0;
}
