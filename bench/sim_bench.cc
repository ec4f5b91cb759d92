// scalelab-sim: a load generator of simulated workers speaking the real WorkerService to the real
// scheduler and store (in-process on a real port over a durable private PostgreSQL, or a running
// scheduler at --target). Each simulated worker registers with --gpus GPUs, heartbeats every
// --heartbeat_s, leases runs for its free GPUs (polling every --lease_poll_s when nothing came),
// "runs" each for an exponential time of mean --run_mean_s, reports a few metric points, and
// completes it with an outcome drawn from the configured rates (defaults: job outcomes from
// published cluster studies, 60% completed, 24% failed, 10% preempted, the rest completed; node
// failures 6.5 per 1,000 node-days, time-compressed by --time_scale). A failed node goes silent
// (its leases expire) and comes back as a new worker after --node_down_s.
//
// Few threads (--threads), each driving its share of workers with blocking calls: 5,000 workers fit
// on 2 cores beside the scheduler. Prints one JSON line: admissions/s (leases granted),
// completions/s, LeaseRuns round trips (p50/p99, all calls and the calls that granted something),
// submit-to-lease latency (p50/p99), and the effective training time ratio (time of attempts that
// completed / time GPUs were held by any attempt).
//
//   build/bin/scalelab-sim [--workers=5000] [--gpus=8] [--runs=100000] [--duration_s=60]
//                          [--threads=4] [--target=host:port]
// It measures whichever lease path the scheduler has: only the public gRPC protocol is used.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "scalelab/v1/sweep.grpc.pb.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "services/common/logging.h"

ABSL_FLAG(int, workers, 5000, "simulated workers");
ABSL_FLAG(int, gpus, 8, "GPUs per worker; each run asks for one");
ABSL_FLAG(int, runs, 100000, "runs submitted (one sweep) before the workers start");
ABSL_FLAG(double, duration_s, 60, "seconds of simulation after all workers registered");
ABSL_FLAG(int, threads, 4, "client threads driving the workers");
ABSL_FLAG(double, heartbeat_s, 3, "seconds between a worker's heartbeats");
ABSL_FLAG(double, lease_poll_s, 1, "seconds a worker waits after an empty LeaseRuns answer");
ABSL_FLAG(double, run_mean_s, 20, "mean simulated run duration (exponential), seconds");
ABSL_FLAG(double, fail_rate, 0.24, "fraction of attempts that fail (user error)");
ABSL_FLAG(double, preempt_rate, 0.10, "fraction of attempts preempted (retried)");
ABSL_FLAG(double, node_failures_per_1000_node_days, 6.5, "node failure rate");
ABSL_FLAG(double, time_scale, 1, "simulated seconds per wall second for node failures");
ABSL_FLAG(double, node_down_s, 10, "wall seconds a failed node stays silent");
ABSL_FLAG(std::string, target, "", "host:port of a running scheduler; empty starts one in-process");
ABSL_FLAG(uint64_t, seed, 1, "random seed");

namespace {

using Clock = std::chrono::steady_clock;
namespace v1 = scalelab::v1;

double Now(Clock::time_point epoch) {
  return std::chrono::duration<double>(Clock::now() - epoch).count();
}

struct Held {
  v1::RunAttempt attempt;
  double leased_at = 0;
  double ends_at = 0;
  int outcome = 0;  // 0 succeeded, 1 failed, 2 preempted
};

struct SimWorker {
  int64_t id = 0;
  int free_gpus = 0;
  std::vector<Held> held;
  double next_heartbeat = 0;
  double next_lease = 0;
  double down_until = -1;  // >= 0: a failed node, silent until then
};

struct Totals {
  std::mutex mu;
  std::vector<double> lease_rtt_ms, granting_rtt_ms, submit_to_lease_s;
  int64_t leases = 0, completions = 0, failures = 0, preemptions = 0, node_failures = 0;
  int64_t rpc_errors = 0;
  double held_gpu_s = 0, productive_gpu_s = 0;
};

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(q * values.size()))];
}

std::string Manifest(int runs) {
  std::string seeds;
  for (int seed = 0; seed < std::max(runs / 100, 1); ++seed) {
    absl::StrAppend(&seeds, seed > 0 ? ", " : "", seed);
  }
  std::string lrs;
  for (int lr_idx = 1; lr_idx <= std::min(runs, 100); ++lr_idx) {
    absl::StrAppend(&lrs, lr_idx > 1 ? ", " : "", lr_idx, "e-5");
  }
  return absl::StrCat(
      "name: sim\nproject: sim\nkind: pretrain\nmax_attempts: 3\n"
      "base:\n"
      "  model: {family: transformer, n_layers: 2, n_heads: 4, d_model: 64, seq_len: 64}\n"
      "  data: {sources: {gcide: data/gcide}}\n"
      "  train: {batch_tokens: 4096, tokens: 1e6, schedule: cosine, warmup: 0.05}\n"
      "  resources: {gpus: 1}\n"
      "sweep:\n  grid:\n    train.seed: [",
      seeds, "]\n    train.lr: [", lrs, "]\n");
}

int64_t Register(v1::WorkerService::Stub& stub, const std::string& name, int gpus) {
  v1::RegisterRequest request;
  request.set_name(name);
  request.set_hostname(name);
  request.set_cpu_slots(gpus);
  for (int gpu_idx = 0; gpu_idx < gpus; ++gpu_idx) {
    v1::GpuInfo* gpu = request.add_gpus();
    gpu->set_index(gpu_idx);
    gpu->set_name("NVIDIA H200");
    gpu->set_memory_bytes(int64_t{141} << 30);
  }
  v1::RegisterResponse response;
  grpc::ClientContext context;
  return stub.Register(&context, request, &response).ok() ? response.worker_id() : 0;
}

// Drives workers[first], workers[first + stride], ... until `end_s`.
void Drive(v1::WorkerService::Stub& stub, std::vector<SimWorker>& workers, size_t first,
           size_t stride, Clock::time_point epoch, double submitted_at, double end_s, uint64_t seed,
           Totals& totals) {
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> uniform(0, 1);
  std::exponential_distribution<double> duration(1.0 / absl::GetFlag(FLAGS_run_mean_s));
  const double heartbeat_s = absl::GetFlag(FLAGS_heartbeat_s);
  const double poll_s = absl::GetFlag(FLAGS_lease_poll_s);
  const double fail_rate = absl::GetFlag(FLAGS_fail_rate);
  const double preempt_rate = absl::GetFlag(FLAGS_preempt_rate);
  // Per worker per wall second.
  const double node_fail_per_s = absl::GetFlag(FLAGS_node_failures_per_1000_node_days) / 1000 /
                                 86400 * absl::GetFlag(FLAGS_time_scale);
  const int gpus = absl::GetFlag(FLAGS_gpus);
  double last_tick = Now(epoch);
  while (true) {
    const double now = Now(epoch);
    if (now >= end_s) break;
    const double tick = now - last_tick;
    last_tick = now;
    bool did_something = false;
    for (size_t worker_idx = first; worker_idx < workers.size(); worker_idx += stride) {
      SimWorker& worker = workers[worker_idx];
      if (worker.down_until >= 0) {
        if (now < worker.down_until) continue;
        worker = SimWorker();  // back as a new node
        worker.id = Register(stub, absl::StrCat("sim-", worker_idx, "-", now), gpus);
        worker.free_gpus = gpus;
        worker.next_heartbeat = now + heartbeat_s;
        did_something = true;
        continue;
      }
      if (uniform(random) < node_fail_per_s * tick) {
        // The node dies: its attempts' GPU time is lost, its leases expire at the scheduler.
        std::lock_guard<std::mutex> lock(totals.mu);
        ++totals.node_failures;
        for (const Held& held : worker.held) totals.held_gpu_s += now - held.leased_at;
        worker.held.clear();
        worker.down_until = now + absl::GetFlag(FLAGS_node_down_s);
        continue;
      }
      // Finish what is due.
      for (size_t held_idx = 0; held_idx < worker.held.size();) {
        Held& held = worker.held[held_idx];
        if (held.ends_at > now) {
          ++held_idx;
          continue;
        }
        did_something = true;
        {
          v1::ReportMetricsRequest report;
          report.set_worker_id(worker.id);
          report.set_run_id(held.attempt.run_id());
          report.set_attempt(held.attempt.attempt());
          report.set_lease_token(held.attempt.lease_token());
          for (int step = 1; step <= 3; ++step) {
            v1::MetricPoint* point = report.add_points();
            point->set_step(step * 100);
            point->set_tokens(step * 409600.0);
            point->set_name("train_loss");
            point->set_value(4.0 / step);
          }
          v1::ReportMetricsResponse ignored;
          grpc::ClientContext context;
          stub.ReportMetrics(&context, report, &ignored);
        }
        v1::CompleteRunRequest request;
        request.set_worker_id(worker.id);
        request.set_run_id(held.attempt.run_id());
        request.set_attempt(held.attempt.attempt());
        request.set_lease_token(held.attempt.lease_token());
        request.set_succeeded(held.outcome == 0);
        if (held.outcome == 1) {
          request.set_exit_code(1);
          request.set_failure_class(v1::FAILURE_CLASS_USER);
          request.set_message("simulated failure");
        } else if (held.outcome == 2) {
          request.set_exit_code(-1);
          request.set_term_signal(15);
          request.set_failure_class(v1::FAILURE_CLASS_PREEMPTED);
          request.set_message("simulated preemption");
        }
        v1::CompleteRunResponse response;
        grpc::ClientContext context;
        grpc::Status status = stub.CompleteRun(&context, request, &response);
        {
          std::lock_guard<std::mutex> lock(totals.mu);
          if (!status.ok()) ++totals.rpc_errors;
          totals.held_gpu_s += now - held.leased_at;
          if (held.outcome == 0 && status.ok()) {
            totals.productive_gpu_s += now - held.leased_at;
            ++totals.completions;
          }
          if (held.outcome == 1) ++totals.failures;
          if (held.outcome == 2) ++totals.preemptions;
        }
        held = worker.held.back();
        worker.held.pop_back();
        ++worker.free_gpus;
      }
      if (now >= worker.next_heartbeat) {
        did_something = true;
        v1::HeartbeatRequest request;
        request.set_worker_id(worker.id);
        for (const Held& held : worker.held) *request.add_running() = held.attempt;
        v1::HeartbeatResponse response;
        grpc::ClientContext context;
        if (!stub.Heartbeat(&context, request, &response).ok()) {
          std::lock_guard<std::mutex> lock(totals.mu);
          ++totals.rpc_errors;
        }
        worker.next_heartbeat = now + heartbeat_s;
      }
      if (worker.free_gpus > 0 && now >= worker.next_lease) {
        did_something = true;
        v1::LeaseRunsRequest request;
        request.set_worker_id(worker.id);
        request.set_free_slots(worker.free_gpus);
        v1::LeaseRunsResponse response;
        grpc::ClientContext context;
        const auto sent = Clock::now();
        grpc::Status status = stub.LeaseRuns(&context, request, &response);
        const double rtt_ms =
            std::chrono::duration<double, std::milli>(Clock::now() - sent).count();
        const double leased_at = Now(epoch);
        std::lock_guard<std::mutex> lock(totals.mu);
        if (!status.ok()) {
          ++totals.rpc_errors;
          worker.next_lease = now + poll_s;
          continue;
        }
        totals.lease_rtt_ms.push_back(rtt_ms);
        if (response.leases_size() == 0) {
          worker.next_lease = now + poll_s;
          continue;
        }
        totals.granting_rtt_ms.push_back(rtt_ms);
        for (const v1::Lease& lease : response.leases()) {
          Held held;
          held.attempt.set_run_id(lease.spec().run_id());
          held.attempt.set_attempt(lease.spec().attempt());
          held.attempt.set_lease_token(lease.spec().lease_token());
          held.leased_at = leased_at;
          const double draw = uniform(random);
          held.outcome = draw < fail_rate ? 1 : draw < fail_rate + preempt_rate ? 2 : 0;
          // Failures and preemptions come part way through the run.
          const double length = duration(random);
          held.ends_at = leased_at + (held.outcome == 0 ? length : length * uniform(random));
          if (lease.spec().attempt() == 1)
            totals.submit_to_lease_s.push_back(leased_at - submitted_at);
          worker.held.push_back(held);
          --worker.free_gpus;
          ++totals.leases;
        }
      }
    }
    if (!did_something) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (auto status = scalelab::services::InitLogging("sim", "warn"); !status.ok()) return 1;
  std::string target = absl::GetFlag(FLAGS_target);
  std::unique_ptr<scalelab::scheduler::Scheduler> scheduler;
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("scalelab_sim_", getpid())).string();
  if (target.empty()) {
    scalelab::scheduler::SchedulerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_address = "";
    options.data_dir = dir;
    options.run_fitter = false;
    options.pool_size = 8;
    auto started = scalelab::scheduler::Scheduler::Start(options);
    if (!started.ok()) {
      std::fprintf(stderr, "scheduler: %s\n", started.status().ToString().c_str());
      return 1;
    }
    scheduler = *std::move(started);
    target = absl::StrCat("127.0.0.1:", scheduler->grpc_port());
  }
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  auto sweeps = v1::SweepService::NewStub(channel);
  const int threads = std::max(1, absl::GetFlag(FLAGS_threads));
  std::vector<std::unique_ptr<v1::WorkerService::Stub>> stubs;
  for (int thread_idx = 0; thread_idx < threads; ++thread_idx) {
    // A channel per thread: one HTTP/2 connection would serialize them.
    grpc::ChannelArguments args;
    args.SetInt("scalelab.sim.channel", thread_idx);
    stubs.push_back(v1::WorkerService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
  }

  const auto epoch = Clock::now();
  {
    v1::SubmitSweepRequest request;
    request.set_manifest_yaml(Manifest(absl::GetFlag(FLAGS_runs)));
    request.set_manifest_name("sim.yaml");
    v1::SubmitSweepResponse response;
    grpc::ClientContext context;
    grpc::Status status = sweeps->SubmitSweep(&context, request, &response);
    if (!status.ok()) {
      std::fprintf(stderr, "SubmitSweep: %s\n", status.error_message().c_str());
      return 1;
    }
  }
  const double submitted_at = Now(epoch);
  std::vector<SimWorker> workers(absl::GetFlag(FLAGS_workers));
  {
    std::vector<std::thread> registering;
    for (int thread_idx = 0; thread_idx < threads; ++thread_idx) {
      registering.emplace_back([&, thread_idx] {
        for (size_t worker_idx = thread_idx; worker_idx < workers.size(); worker_idx += threads) {
          workers[worker_idx].id = Register(*stubs[thread_idx], absl::StrCat("sim-", worker_idx),
                                            absl::GetFlag(FLAGS_gpus));
          workers[worker_idx].free_gpus = absl::GetFlag(FLAGS_gpus);
        }
      });
    }
    for (std::thread& thread : registering) thread.join();
  }
  const double registered_at = Now(epoch);
  const double end_s = registered_at + absl::GetFlag(FLAGS_duration_s);
  Totals totals;
  std::vector<std::thread> drivers;
  for (int thread_idx = 0; thread_idx < threads; ++thread_idx) {
    drivers.emplace_back([&, thread_idx] {
      Drive(*stubs[thread_idx], workers, thread_idx, threads, epoch, submitted_at, end_s,
            absl::GetFlag(FLAGS_seed) + thread_idx, totals);
    });
  }
  for (std::thread& thread : drivers) thread.join();
  const double wall_s = Now(epoch) - registered_at;
  // Attempts still running at the end held their GPUs until now, productively so far.
  const double end = Now(epoch);
  for (const SimWorker& worker : workers) {
    for (const Held& held : worker.held) {
      totals.held_gpu_s += end - held.leased_at;
      if (held.outcome == 0) totals.productive_gpu_s += end - held.leased_at;
    }
  }
  const double admissions_per_s = totals.leases / wall_s;
  const double p99_lease_ms = Percentile(totals.lease_rtt_ms, 0.99);
  std::printf(
      "{\"bench\":\"sim\",\"workers\":%zu,\"gpus_per_worker\":%d,\"runs\":%d,\"threads\":%d,"
      "\"register_s\":%.2f,\"wall_s\":%.1f,\"leases\":%lld,\"admissions_per_s\":%.1f,"
      "\"admissions_target_per_s\":2000,\"completions_per_s\":%.1f,\"failed\":%lld,"
      "\"preempted\":%lld,\"node_failures\":%lld,\"rpc_errors\":%lld,"
      "\"lease_rtt_ms_p50\":%.2f,\"lease_rtt_ms_p99\":%.2f,\"p99_target_ms\":50,"
      "\"granting_lease_rtt_ms_p50\":%.2f,\"granting_lease_rtt_ms_p99\":%.2f,"
      "\"lease_calls\":%zu,\"submit_to_lease_s_p50\":%.2f,\"submit_to_lease_s_p99\":%.2f,"
      "\"ettr\":%.3f}\n",
      workers.size(), absl::GetFlag(FLAGS_gpus), absl::GetFlag(FLAGS_runs), threads,
      registered_at - submitted_at, wall_s, static_cast<long long>(totals.leases), admissions_per_s,
      totals.completions / wall_s, static_cast<long long>(totals.failures),
      static_cast<long long>(totals.preemptions), static_cast<long long>(totals.node_failures),
      static_cast<long long>(totals.rpc_errors), Percentile(totals.lease_rtt_ms, 0.5), p99_lease_ms,
      Percentile(totals.granting_rtt_ms, 0.5), Percentile(totals.granting_rtt_ms, 0.99),
      totals.lease_rtt_ms.size(), Percentile(totals.submit_to_lease_s, 0.5),
      Percentile(totals.submit_to_lease_s, 0.99),
      totals.held_gpu_s > 0 ? totals.productive_gpu_s / totals.held_gpu_s : 0.0);
  if (scheduler) scheduler->Shutdown();
  std::filesystem::remove_all(dir);
  return 0;
}
