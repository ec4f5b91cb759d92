// The agent's loop is single-threaded: every RPC and every child's lifecycle is driven from
// Run(). Only reading a child's stdout happens on a thread of its own (one per attempt), because
// a blocking read is the simplest correct way to follow a pipe.
#include "worker/agent.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "runspec/eval_result.h"
#include "runspec/exit_codes.h"
#include "runspec/spec_file.h"
#include "scalelab/v1/worker.grpc.pb.h"
#include "services/api/grpc_server.h"
#include "services/api/metrics.h"
#include "services/api/status_util.h"
#include "services/common/run_state.h"
#include "spdlog/spdlog.h"
#include "worker/child_process.h"
#include "worker/health.h"
#include "worker/inventory.h"
#include "worker/trainer_command.h"

namespace scalelab::worker {
namespace {

enum class StopReason { kNone, kCancelled, kShutdown, kLeaseLost, kPreempted };

// One attempt of a run on this worker.
struct Attempt {
  v1::Lease lease;  // lease.spec() as the scheduler sent it
  int64_t run_id() const { return lease.spec().run_id(); }
  int32_t number() const { return lease.spec().attempt(); }
  int64_t lease_token() const { return lease.spec().lease_token(); }
  int rank() const { return lease.spec().execution().rank(); }  // 0 unless a gang's rank > 0
  // Failure evidence (runspec::ClassifyFailure): the trainer's failure record (guarded by mu),
  // the cgroup's OOM-kill count when the child started, and the first health check that failed
  // while it ran (loop thread only).
  std::optional<TrainerFailure> reported_failure;
  int64_t oom_kills_at_start = -1;
  std::optional<v1::HealthCheck> failed_health;
  std::string dir;
  std::string checkpoint_dir;  // shared by the run's attempts; pruned by PruneRecordedCheckpoints
  std::unique_ptr<ChildProcess> child;
  std::thread reader;
  std::mutex mu;
  std::vector<v1::MetricPoint> pending;  // guarded by mu
  std::vector<v1::Artifact> artifacts;   // reported by the trainer, not yet stored; guarded by mu
  std::vector<v1::EvalResult> evals;     // evaluation results not yet stored; guarded by mu
  std::optional<v1::RunRecord> record;   // the trainer's latest run record; guarded by mu
  int64_t record_version = 0;            // record lines read so far; guarded by mu
  int64_t record_sent = 0;               // the record_version the scheduler has (loop thread only)
  bool eof = false;                      // guarded by mu
  bool announced = false;  // the first (possibly empty) report moved the run to RUNNING
  // The scheduler refused this attempt's reports (cancelled, or the lease went elsewhere):
  // nothing more is sent for it, its points are dropped, and the child is killed.
  bool rejected = false;
  StopReason stop = StopReason::kNone;
  absl::Time stop_sent;
  double tokens_seen = 0;
  std::optional<ExitInfo> exit;
  std::unique_ptr<EnergyMeter> meter;      // from just before the child started
  std::optional<v1::EnergyReport> energy;  // set when the child's exit is first seen
};

std::string SelfDirectory() {
  std::error_code error;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? "." : exe.parent_path().string();
}

// Splits the child's stdout (`fd`, owned by the attempt's ChildProcess, which outlives this
// thread) into lines and queues the parsed points. Calls `wake` at the end of the output (the
// child is ending: the agent's loop reports it now rather than at its next tick).
void ReadMetrics(Attempt* attempt, int fd, const std::function<void()>& wake) {
  std::string buffer;
  char chunk[4096];
  while (true) {
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    size_t start = 0;
    for (size_t newline; (newline = buffer.find('\n', start)) != std::string::npos;
         start = newline + 1) {
      absl::string_view line(buffer.data() + start, newline - start);
      if (line.empty()) continue;
      auto parsed = ParseTrainerLine(line);
      if (!parsed.ok()) {
        spdlog::warn("run={} skipping output line: {}", attempt->run_id(),
                     parsed.status().ToString());
        continue;
      }
      if (parsed->artifact) {
        // Hashed here, once, off the agent's loop: a multi-GB file must not delay heartbeats.
        if (absl::Status status = DescribeArtifactFile(&*parsed->artifact); !status.ok()) {
          spdlog::warn("run={} skipping artifact: {}", attempt->run_id(), status.ToString());
          continue;
        }
      }
      std::lock_guard<std::mutex> lock(attempt->mu);
      if (parsed->failure) attempt->reported_failure = *std::move(parsed->failure);
      if (parsed->metric) attempt->pending.push_back(*std::move(parsed->metric));
      if (parsed->artifact) attempt->artifacts.push_back(*std::move(parsed->artifact));
      if (parsed->eval) attempt->evals.push_back(*std::move(parsed->eval));
      if (parsed->record) {
        attempt->record = *std::move(parsed->record);
        ++attempt->record_version;
      }
    }
    buffer.erase(0, start);
  }
  {
    std::lock_guard<std::mutex> lock(attempt->mu);
    attempt->eof = true;
  }
  wake();
}

// Removes the run's checkpoint files (ckpt-<step>.pt, model/checkpoint.h) newer than
// `last_stored_step`: the store never recorded them, so the points before them may be lost with
// the worker that wrote them, and the trainer must resume from the newest one the store knows.
void RemoveCheckpointsAfter(const std::string& dir, int64_t last_stored_step, int64_t run_id) {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    absl::string_view name = entry.path().filename().native();
    int64_t step = 0;
    if (!absl::ConsumePrefix(&name, "ckpt-") || !absl::ConsumeSuffix(&name, ".pt") ||
        !absl::SimpleAtoi(name, &step) || step <= last_stored_step) {
      continue;
    }
    std::error_code removed;
    std::filesystem::remove(entry.path(), removed);
    spdlog::warn(
        "run={}: removed checkpoint {} (step {} was never recorded by the scheduler; the "
        "newest recorded is step {})",
        run_id, entry.path().string(), step, last_stored_step);
  }
}

// Keeps the newest `keep` checkpoints the store has recorded (step <= `newest_recorded`) and
// every newer one not yet recorded; deletes the older recorded ones. The trainer deletes none
// under a worker (ExecutionSpec.worker_prunes_checkpoints): a trainer that pruned by itself could
// delete the last recorded checkpoint while the newer ones were still unrecorded, and a worker
// killed then would leave the next attempt nothing to resume from.
void PruneRecordedCheckpoints(const std::string& dir, int64_t newest_recorded, int64_t keep,
                              int64_t run_id) {
  std::vector<std::pair<int64_t, std::filesystem::path>> recorded;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    absl::string_view name = entry.path().filename().native();
    int64_t step = 0;
    if (absl::ConsumePrefix(&name, "ckpt-") && absl::ConsumeSuffix(&name, ".pt") &&
        absl::SimpleAtoi(name, &step) && step <= newest_recorded) {
      recorded.emplace_back(step, entry.path());
    }
  }
  if (keep <= 0) keep = 2;  // CheckpointConfig.keep: 0 = 2
  if (recorded.size() <= static_cast<size_t>(keep)) return;
  std::sort(recorded.begin(), recorded.end());
  recorded.resize(recorded.size() - static_cast<size_t>(keep));
  for (const auto& [step, path] : recorded) {
    std::error_code removed;
    if (!std::filesystem::remove(path, removed) && removed) {
      spdlog::warn("run={}: cannot remove checkpoint {}: {}", run_id, path.string(),
                   removed.message());
    }
  }
}

}  // namespace

absl::Status AgentOptions::Validate() const {
  if (scheduler_address.empty()) {
    return absl::InvalidArgumentError("scheduler address: expected host:port, got \"\"");
  }
  if (cpu_slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("cpu_slots: expected >= 1, got ", cpu_slots));
  }
  if (threads_per_run < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads_per_run: expected >= 1, got ", threads_per_run));
  }
  if (work_dir.empty()) return absl::InvalidArgumentError("work_dir: expected a folder, got \"\"");
  return energy.Validate();
}

struct Agent::Impl {
  AgentOptions options;
  std::unique_ptr<v1::WorkerService::Stub> stub;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<services::MetricsServer> metrics_server;
  prometheus::Gauge* slots_gauge = nullptr;
  prometheus::Gauge* active_gauge = nullptr;
  prometheus::Family<prometheus::Counter>* finished = nullptr;
  prometheus::Counter* points_forwarded = nullptr;
  prometheus::Counter* evals_forwarded = nullptr;
  prometheus::Counter* tokens_trained = nullptr;
  prometheus::Counter* rpc_failures = nullptr;
  prometheus::Family<prometheus::Counter>* energy_joules = nullptr;
  // NVML, opened when the first GPU attempt starts; null when it is off or failed to open.
  std::unique_ptr<GpuEnergySource> nvml;
  bool nvml_tried = false;

  absl::Notification stop_requested;
  // Wakes the loop before its next 100 ms tick (a child's output ended, or Stop()).
  absl::Mutex wake_mu;
  bool woken ABSL_GUARDED_BY(wake_mu) = false;
  void Wake() {
    absl::MutexLock lock(&wake_mu);
    woken = true;
  }
  // Waits for Wake() or `timeout`; true when woken.
  bool WaitForWake(absl::Duration timeout) {
    absl::MutexLock lock(&wake_mu);
    wake_mu.AwaitWithTimeout(absl::Condition(&woken), timeout);
    const bool was_woken = woken;
    woken = false;
    return was_woken;
  }
  int64_t worker_id = 0;
  int registered_gpus = 0;  // as the last Register sent them; the "gpu" health check's baseline
  absl::Duration heartbeat_interval = absl::Seconds(2);
  absl::Duration lease_ttl = absl::Seconds(15);
  // Last heartbeat the scheduler answered. Silent for a whole lease ttl, this worker must assume
  // its runs were requeued elsewhere and stop them, so a run is never trained twice at once.
  absl::Time last_heartbeat_ok = absl::InfinitePast();
  absl::Time next_heartbeat = absl::InfinitePast();
  absl::Time next_lease_poll = absl::InfinitePast();
  absl::Time next_report = absl::InfinitePast();
  bool tick_soon = false;  // the next tick comes after 5 ms, not 100 ms (loop thread only)
  std::list<std::unique_ptr<Attempt>> attempts;

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(options.rpc_timeout));
    return context;
  }
  absl::Status Call(const char* method, grpc::Status status) {
    if (status.ok()) return absl::OkStatus();
    rpc_failures->Increment();
    absl::Status converted = services::FromGrpcStatus(status);
    spdlog::warn("{} failed: {}", method, converted.ToString());
    return converted;
  }

  absl::Time Now() const { return options.clock->Now(); }
  GpuEnergySource* Nvml();

  absl::Status Register();
  HealthOptions HealthOptionsNow() const {
    HealthOptions health;
    health.work_dir = options.work_dir;
    health.min_free_disk_bytes = options.min_free_disk_bytes;
    health.registered_gpus = registered_gpus;
    health.trainer_path = options.trainer_path;
    return health;
  }
  void Heartbeat();
  // One LeaseRuns call in flight at a time (lease_queue is its completion queue).
  struct LeaseCall {
    std::unique_ptr<grpc::ClientContext> context;
    v1::LeaseRunsRequest request;
    v1::LeaseRunsResponse response;
    grpc::Status status;
    std::unique_ptr<grpc::ClientAsyncResponseReader<v1::LeaseRunsResponse>> reader;
  };
  std::unique_ptr<LeaseCall> lease_call;
  grpc::CompletionQueue lease_queue;
  // The call in flight once it has ended (`block`: waits for its end); null while it runs.
  std::unique_ptr<LeaseCall> CollectLease(bool block);
  void LeaseAndStart();
  // At shutdown: ends the call in flight and hands back what it leased (PREEMPTED).
  void HandBackLeases();
  void StartAttempt(const v1::Lease& lease);
  void Flush(Attempt& attempt);
  // Reports the first `ready` queued artifacts: those read before the points already sent, so
  // a checkpoint is never recorded ahead of the metric points of the steps it covers.
  void FlushArtifacts(Attempt& attempt, size_t ready);
  void FlushEvals(Attempt& attempt);
  void Reject(Attempt& attempt);
  // Kills and forgets every attempt (their leases are gone) and registers again on the next tick.
  void ForgetRegistration();
  // Returns true when the attempt is finished with and can be dropped.
  bool Finish(Attempt& attempt);
  void RequestStop(Attempt& attempt, StopReason reason, int signal_number);
  void Tick();
  // Tells the scheduler this worker is stopping (WorkerService.Drain).
  void Drain();
  void Shutdown();
  // Starts the fork server when options.fork_server is set (Run()'s thread: it dies with it).
  void StartForkServer();
  std::unique_ptr<ChildProcess> SpawnTrainer(const ChildOptions& child_options,
                                             absl::Status* status);
  std::unique_ptr<ForkServer> fork_server;  // null: fork/exec
};

void Agent::Impl::StartForkServer() {
  if (!options.fork_server) return;
  static std::atomic<int> counter{0};
  std::error_code error;
  const std::string socket = absl::StrCat(std::filesystem::temp_directory_path(error).string(),
                                          "/scalelab-worker-", ::getpid(), "-", counter++, ".sock");
  const absl::Time start = absl::Now();
  auto server =
      ForkServer::Start(options.trainer_path, socket, options.work_dir + "/fork-server.log",
                        TrainerEnvironment(v1::RunSpec()));
  if (!server.ok()) {
    spdlog::warn("fork server off, trainers start by fork/exec: {}", server.status().ToString());
    return;
  }
  fork_server = *std::move(server);
  spdlog::info("fork server pid={} on {} ready in {:.3f} s", fork_server->pid(), socket,
               absl::ToDoubleSeconds(absl::Now() - start));
}

std::unique_ptr<ChildProcess> Agent::Impl::SpawnTrainer(const ChildOptions& child_options,
                                                        absl::Status* status) {
  if (fork_server != nullptr) {
    auto child = ChildProcess::SpawnWith(*fork_server, child_options);
    if (child.ok()) return *std::move(child);
    spdlog::warn("fork server stopped answering, trainers start by fork/exec from now: {}",
                 child.status().ToString());
    fork_server.reset();
  }
  auto child = ChildProcess::Spawn(child_options);
  if (child.ok()) return *std::move(child);
  *status = child.status();
  return nullptr;
}

absl::Status Agent::Impl::Register() {
  v1::RegisterRequest request;
  request.set_name(options.name);
  request.set_hostname(Hostname());
  request.set_address(options.address.empty() ? request.hostname() : options.address);
  request.set_cpu_slots(options.cpu_slots);
  for (const v1::GpuInfo& gpu : DetectGpus()) *request.add_gpus() = gpu;
  registered_gpus = request.gpus_size();
  v1::RegisterResponse response;
  auto context = Context();
  if (auto status = Call("Register", stub->Register(context.get(), request, &response));
      !status.ok()) {
    return status;
  }
  worker_id = response.worker_id();
  heartbeat_interval = absl::Seconds(response.heartbeat_interval_s());
  lease_ttl = absl::Seconds(response.lease_ttl_s());
  next_heartbeat = Now() + heartbeat_interval;
  last_heartbeat_ok = Now();
  spdlog::info("registered worker_id={} name={} cpu_slots={} gpus={}", worker_id, options.name,
               options.cpu_slots, request.gpus_size());
  return absl::OkStatus();
}

void Agent::Impl::RequestStop(Attempt& attempt, StopReason reason, int signal_number) {
  if (attempt.stop == StopReason::kNone) {
    attempt.stop = reason;
    attempt.stop_sent = Now();
  }
  attempt.child->Signal(signal_number);
}

void Agent::Impl::Heartbeat() {
  v1::HeartbeatRequest request;
  request.set_worker_id(worker_id);
  for (const auto& attempt : attempts) {
    if (attempt->exit.has_value()) continue;
    v1::RunAttempt* held = request.add_running();
    held->set_run_id(attempt->run_id());
    held->set_attempt(attempt->number());
    held->set_lease_token(attempt->lease_token());
    held->set_rank(attempt->rank());
  }
  const std::vector<v1::HealthCheck> health = RunHealthChecks(HealthOptionsNow());
  for (const v1::HealthCheck& check : health) *request.add_health() = check;
  if (const v1::HealthCheck* failed = FirstFailed(health); failed != nullptr) {
    spdlog::warn("health check {} failed: {}", failed->name(), failed->message());
    for (auto& attempt : attempts) {
      if (!attempt->exit.has_value() && !attempt->failed_health) attempt->failed_health = *failed;
    }
  }
  v1::HeartbeatResponse response;
  auto context = Context();
  if (!Call("Heartbeat", stub->Heartbeat(context.get(), request, &response)).ok()) {
    if (Now() - last_heartbeat_ok > lease_ttl) {
      spdlog::warn(
          "no heartbeat answered for {}: the scheduler has requeued this worker's runs; "
          "stopping them and registering again",
          absl::FormatDuration(Now() - last_heartbeat_ok));
      ForgetRegistration();
    }
    return;
  }
  last_heartbeat_ok = Now();
  next_heartbeat = Now() + heartbeat_interval;
  for (const v1::RunAttempt& stop : response.stop()) {
    for (auto& attempt : attempts) {
      if (attempt->run_id() == stop.run_id() && attempt->number() == stop.attempt() &&
          attempt->rank() == stop.rank()) {
        spdlog::info("stopping run={} attempt={} rank={}: the scheduler no longer wants it",
                     stop.run_id(), stop.attempt(), stop.rank());
        RequestStop(*attempt, StopReason::kCancelled, SIGTERM);
      }
    }
  }
  // Preemption: SIGTERM once (the trainer checkpoints and exits 7); Finish kills it after
  // preempt_grace. The scheduler lists the attempt on every heartbeat until it has ended.
  for (const v1::RunAttempt& preempt : response.preempt()) {
    for (auto& attempt : attempts) {
      if (attempt->run_id() != preempt.run_id() || attempt->number() != preempt.attempt() ||
          attempt->stop != StopReason::kNone || attempt->exit.has_value()) {
        continue;
      }
      spdlog::info("preempting run={} attempt={}: checkpoint, then stop (grace {})",
                   preempt.run_id(), preempt.attempt(),
                   absl::FormatDuration(options.preempt_grace));
      RequestStop(*attempt, StopReason::kPreempted, SIGTERM);
    }
  }
  if (response.reregister()) {
    spdlog::warn("scheduler does not know worker_id={}; stopping its runs and registering again",
                 worker_id);
    ForgetRegistration();
  }
}

GpuEnergySource* Agent::Impl::Nvml() {
  if (!nvml_tried && options.energy.use_nvml) {
    nvml_tried = true;
    absl::StatusOr<std::unique_ptr<GpuEnergySource>> opened = OpenNvml();
    if (opened.ok()) {
      nvml = *std::move(opened);
    } else {
      spdlog::warn("GPU energy falls back to the power model: {}", opened.status().ToString());
    }
  }
  return nvml.get();
}

void Agent::Impl::StartAttempt(const v1::Lease& lease) {
  auto attempt = std::make_unique<Attempt>();
  attempt->lease = lease;
  const v1::RunSpec& leased = lease.spec();
  // A gang's ranks may share this work_dir (two ranks here, or workers on a shared file system,
  // as the checkpoints must be): each rank gets its own attempt folder.
  attempt->dir = absl::StrCat(options.work_dir, "/run-", leased.run_id(), "-", leased.attempt(),
                              attempt->rank() > 0 ? absl::StrCat("-rank", attempt->rank()) : "");
  const std::string checkpoint_dir =
      absl::StrCat(options.work_dir, "/run-", leased.run_id(), "-checkpoints");
  attempt->checkpoint_dir = checkpoint_dir;
  std::error_code error;
  std::filesystem::create_directories(attempt->dir, error);
  std::filesystem::create_directories(checkpoint_dir, error);
  if (lease.checkpoints_known()) {
    RemoveCheckpointsAfter(checkpoint_dir, lease.last_checkpoint_step(), leased.run_id());
  }
  // The trainer gets absolute folders: it may run with another working directory.
  const std::string attempt_dir = std::filesystem::absolute(attempt->dir, error).string();
  TrainerInvocation invocation{options.trainer_path, options.data_root, options.threads_per_run};
  absl::Status status;
  auto spec = CompleteRunSpec(invocation, leased, attempt_dir,
                              std::filesystem::absolute(checkpoint_dir, error).string());
  if (spec.ok()) status = runspec::WriteRunSpecFile(attempt_dir + "/spec.json", *spec);
  if (spec.ok() && status.ok()) {
    GpuEnergySource* gpus = spec->execution().gpu_indices().empty() ? nullptr : Nvml();
    attempt->meter =
        std::make_unique<EnergyMeter>(options.energy, options.cpu_slots, *spec, gpus, Now());
    attempt->oom_kills_at_start = ReadOomKills();
    attempt->child = SpawnTrainer({BuildTrainerArgv(invocation, attempt_dir + "/spec.json"),
                                   attempt->dir + "/stderr.log", "", TrainerEnvironment(*spec)},
                                  &status);
  } else if (!spec.ok()) {
    status = spec.status();
  }
  if (!status.ok()) {
    // The run never started here: report it so the scheduler decides (retry elsewhere).
    spdlog::error("cannot start run={} attempt={}: {}", leased.run_id(), leased.attempt(),
                  status.ToString());
    v1::CompleteRunRequest request;
    request.set_worker_id(worker_id);
    request.set_run_id(leased.run_id());
    request.set_attempt(leased.attempt());
    request.set_lease_token(leased.lease_token());
    request.set_rank(leased.execution().rank());
    request.set_exit_code(-1);
    // A spec the trainer would refuse is the run's fault; anything else is this node's.
    request.set_failure_class(absl::IsInvalidArgument(status) ? v1::FAILURE_CLASS_USER
                                                              : v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
    request.set_message(status.ToString());
    request.set_failure_evidence(
        absl::StrCat("the worker could not start the trainer: ", status.ToString()));
    v1::CompleteRunResponse response;
    auto context = Context();
    Call("CompleteRun", stub->CompleteRun(context.get(), request, &response)).IgnoreError();
    return;
  }
  spdlog::info(
      "started run={} attempt={}{} pid={} dir={} energy={}{}", leased.run_id(), leased.attempt(),
      leased.execution().world_size() > 1
          ? absl::StrCat(" rank=", leased.execution().rank(), "/", leased.execution().world_size(),
                         " rendezvous=", leased.execution().rendezvous())
          : "",
      attempt->child->pid(), attempt->dir, attempt->meter->source(),
      attempt->meter->fallback_reason().empty()
          ? ""
          : absl::StrCat(" (", attempt->meter->fallback_reason(), ")"));
  Attempt* raw = attempt.get();
  attempt->reader = std::thread(
      [this, raw, fd = raw->child->stdout_fd()] { ReadMetrics(raw, fd, [this] { Wake(); }); });
  attempts.push_back(std::move(attempt));
}

// LeaseRuns is asynchronous: the scheduler may hold the call up to a quarter second waiting for
// an admission pass, and meanwhile this loop must keep reporting the attempts that end.
std::unique_ptr<Agent::Impl::LeaseCall> Agent::Impl::CollectLease(bool block) {
  if (lease_call == nullptr) return nullptr;
  void* tag = nullptr;
  bool ok = false;
  if (block) {
    if (!lease_queue.Next(&tag, &ok)) return nullptr;
  } else if (lease_queue.AsyncNext(&tag, &ok, std::chrono::system_clock::now()) !=
             grpc::CompletionQueue::GOT_EVENT) {
    return nullptr;
  }
  return std::move(lease_call);
}

void Agent::Impl::LeaseAndStart() {
  if (lease_call != nullptr) {
    std::unique_ptr<LeaseCall> call = CollectLease(/*block=*/false);
    if (call == nullptr) {
      tick_soon = true;  // in flight: look again in a few ms
      return;
    }
    absl::Status status = Call("LeaseRuns", call->status);
    if (absl::IsFailedPrecondition(status)) ForgetRegistration();  // declared lost
    // Leases for a registration this worker has since given up are not its own any more.
    if (!status.ok() || call->request.worker_id() != worker_id) return;
    for (const v1::Lease& lease : call->response.leases()) StartAttempt(lease);
    // Polled again at once while the queue hands out runs (and whenever a slot frees, Tick);
    // only an empty answer waits lease_poll_interval.
    if (call->response.leases_size() > 0) next_lease_poll = absl::InfinitePast();
  }
  int free_slots = options.cpu_slots - static_cast<int>(attempts.size());
  if (free_slots <= 0 || Now() < next_lease_poll) return;
  next_lease_poll = Now() + options.lease_poll_interval;
  lease_call = std::make_unique<LeaseCall>();
  lease_call->context = Context();
  lease_call->request.set_worker_id(worker_id);
  lease_call->request.set_free_slots(free_slots);
  lease_call->reader =
      stub->AsyncLeaseRuns(lease_call->context.get(), lease_call->request, &lease_queue);
  lease_call->reader->Finish(&lease_call->response, &lease_call->status, lease_call.get());
  tick_soon = true;
}

void Agent::Impl::HandBackLeases() {
  if (lease_call != nullptr) {
    lease_call->context->TryCancel();
    std::unique_ptr<LeaseCall> call = CollectLease(/*block=*/true);
    if (call != nullptr && call->status.ok()) {
      // Leased as the worker stopped: handed back at once rather than left to expire.
      for (const v1::Lease& lease : call->response.leases()) {
        v1::CompleteRunRequest request;
        request.set_worker_id(call->request.worker_id());
        request.set_run_id(lease.spec().run_id());
        request.set_attempt(lease.spec().attempt());
        request.set_lease_token(lease.spec().lease_token());
        request.set_exit_code(-1);
        request.set_failure_class(v1::FAILURE_CLASS_PREEMPTED);
        request.set_failure_evidence("the worker shut down before starting it");
        v1::CompleteRunResponse response;
        auto context = Context();
        Call("CompleteRun", stub->CompleteRun(context.get(), request, &response)).IgnoreError();
      }
    }
  }
  lease_queue.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (lease_queue.Next(&tag, &ok)) {
  }
}

void Agent::Impl::ForgetRegistration() {
  for (auto& attempt : attempts) Reject(*attempt);
  worker_id = 0;
}

void Agent::Impl::Reject(Attempt& attempt) {
  attempt.rejected = true;
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    attempt.pending.clear();
  }
  RequestStop(attempt, StopReason::kLeaseLost, SIGKILL);
}

void Agent::Impl::Flush(Attempt& attempt) {
  if (attempt.rejected || attempt.rank() > 0) {
    std::lock_guard<std::mutex> lock(attempt.mu);
    // Lines still arriving from a child that is being killed. Artifacts too: Finish waits for
    // both queues to drain, and nothing of a rejected attempt is ever sent. A gang's rank > 0
    // reports nothing either (rank 0 reports the run; its trainer prints nothing to report).
    attempt.pending.clear();
    attempt.artifacts.clear();
    attempt.evals.clear();
    attempt.record_sent = attempt.record_version;
    return;
  }
  v1::ReportMetricsRequest request;
  bool points_to_send = false;
  int64_t record_version = 0;
  size_t artifacts_ready = 0;
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    for (const v1::MetricPoint& point : attempt.pending) *request.add_points() = point;
    artifacts_ready = attempt.artifacts.size();
    record_version = attempt.record_version;
    // A new record goes with the next report, with or without points (the final one usually
    // follows the last metric line).
    if (attempt.record.has_value() && record_version != attempt.record_sent) {
      *request.mutable_record() = *attempt.record;
    }
    points_to_send = !attempt.pending.empty() || !attempt.announced || request.has_record();
  }
  // An artifact line after the last metric line (the final weights) must still be reported.
  if (!points_to_send) {
    FlushArtifacts(attempt, artifacts_ready);
    FlushEvals(attempt);
    return;
  }
  request.set_worker_id(worker_id);
  request.set_run_id(attempt.run_id());
  request.set_attempt(attempt.number());
  request.set_lease_token(attempt.lease_token());
  v1::ReportMetricsResponse response;
  auto context = Context();
  absl::Status status =
      Call("ReportMetrics", stub->ReportMetrics(context.get(), request, &response));
  if (absl::IsFailedPrecondition(status) || absl::IsNotFound(status)) {
    spdlog::warn("run={} attempt={} is no longer ours; stopping it", attempt.run_id(),
                 attempt.number());
    Reject(attempt);
    return;
  }
  if (!status.ok()) return;  // kept and re-sent; the store keeps one copy per key
  attempt.announced = true;
  attempt.record_sent = record_version;
  double max_tokens = attempt.tokens_seen;
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    // Points that arrived during the call stay queued for the next batch.
    attempt.pending.erase(attempt.pending.begin(), attempt.pending.begin() + request.points_size());
  }
  for (const v1::MetricPoint& point : request.points()) {
    max_tokens = std::max(max_tokens, point.tokens());
  }
  points_forwarded->Increment(request.points_size());
  tokens_trained->Increment(max_tokens - attempt.tokens_seen);
  attempt.tokens_seen = max_tokens;
  FlushArtifacts(attempt, artifacts_ready);
  FlushEvals(attempt);
}

void Agent::Impl::FlushEvals(Attempt& attempt) {
  if (attempt.rejected) return;
  v1::ReportEvalsRequest request;
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    if (attempt.evals.empty()) return;
    // Each line was checked when it was read; only the batch size is left to respect.
    const size_t count =
        std::min(attempt.evals.size(), static_cast<size_t>(runspec::kMaxEvalsPerReport));
    for (size_t eval_idx = 0; eval_idx < count; ++eval_idx) {
      *request.add_evals() = attempt.evals[eval_idx];
    }
  }
  request.set_worker_id(worker_id);
  request.set_run_id(attempt.run_id());
  request.set_attempt(attempt.number());
  request.set_lease_token(attempt.lease_token());
  v1::ReportEvalsResponse response;
  auto context = Context();
  absl::Status status = Call("ReportEvals", stub->ReportEvals(context.get(), request, &response));
  if (absl::IsFailedPrecondition(status) || absl::IsNotFound(status)) {
    spdlog::warn("run={} attempt={} is no longer ours; its evaluation results are not recorded",
                 attempt.run_id(), attempt.number());
    Reject(attempt);
    std::lock_guard<std::mutex> lock(attempt.mu);
    attempt.evals.clear();
    return;
  }
  if (absl::IsInvalidArgument(status) || absl::IsUnimplemented(status)) {
    // Re-sending would be refused forever (a bad batch, or a scheduler older than ReportEvals)
    // and hold the attempt's completion.
    spdlog::error("run={} attempt={}: {} evaluation results refused, dropped: {}", attempt.run_id(),
                  attempt.number(), request.evals_size(), status.ToString());
  } else if (!status.ok()) {
    return;  // kept and re-sent; the store keeps one row per key
  } else {
    evals_forwarded->Increment(request.evals_size());
  }
  std::lock_guard<std::mutex> lock(attempt.mu);
  attempt.evals.erase(attempt.evals.begin(), attempt.evals.begin() + request.evals_size());
}

void Agent::Impl::FlushArtifacts(Attempt& attempt, size_t ready) {
  v1::ReportArtifactsRequest request;
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    ready = std::min(ready, attempt.artifacts.size());
    if (ready == 0) return;
    for (size_t artifact_idx = 0; artifact_idx < ready; ++artifact_idx) {
      *request.add_artifacts() = attempt.artifacts[artifact_idx];
    }
  }
  request.set_worker_id(worker_id);
  request.set_run_id(attempt.run_id());
  request.set_attempt(attempt.number());
  request.set_lease_token(attempt.lease_token());
  v1::ReportArtifactsResponse response;
  auto context = Context();
  absl::Status status =
      Call("ReportArtifacts", stub->ReportArtifacts(context.get(), request, &response));
  if (absl::IsFailedPrecondition(status) || absl::IsNotFound(status)) {
    // The attempt is no longer ours: its artifacts cannot be recorded, and waiting for that
    // would hold the attempt (and its slot) forever.
    spdlog::warn("run={} attempt={} is no longer ours; its artifacts are not recorded",
                 attempt.run_id(), attempt.number());
    Reject(attempt);
    std::lock_guard<std::mutex> lock(attempt.mu);
    attempt.artifacts.clear();
    return;
  }
  if (absl::IsInvalidArgument(status)) {
    spdlog::error("run={} attempt={}: artifacts refused, dropped: {}", attempt.run_id(),
                  attempt.number(), status.ToString());
  } else if (!status.ok()) {
    return;  // kept and re-sent; the store keeps one copy per key
  }
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    attempt.artifacts.erase(attempt.artifacts.begin(),
                            attempt.artifacts.begin() + request.artifacts_size());
  }
  if (!status.ok()) return;
  int64_t newest_checkpoint = 0;
  for (const v1::Artifact& artifact : request.artifacts()) {
    if (artifact.kind() == "checkpoint") {
      newest_checkpoint = std::max(newest_checkpoint, artifact.step());
    }
  }
  if (newest_checkpoint > 0) {
    PruneRecordedCheckpoints(attempt.checkpoint_dir, newest_checkpoint,
                             attempt.lease.spec().config().checkpoint().keep(), attempt.run_id());
  }
}

bool Agent::Impl::Finish(Attempt& attempt) {
  if (!attempt.exit.has_value()) attempt.exit = attempt.child->Poll();
  if (!attempt.exit.has_value()) {
    const absl::Duration grace =
        attempt.stop == StopReason::kPreempted ? options.preempt_grace : options.stop_grace;
    if (attempt.stop != StopReason::kNone && Now() - attempt.stop_sent > grace) {
      attempt.child->Signal(SIGKILL);
    }
    std::lock_guard<std::mutex> lock(attempt.mu);
    // Its output ended: the exit (status) follows within moments; look again soon.
    if (attempt.eof) tick_soon = true;
    return false;
  }
  if (!attempt.energy.has_value()) {
    // The attempt's devices are free from here on, whatever reporting still takes.
    attempt.energy = attempt.meter->Finish(Now());
    energy_joules->Add({{"source", attempt.energy->source()}})
        .Increment(attempt.energy->energy_j());
  }
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    if (!attempt.eof) return false;  // the pipe still holds lines
  }
  Flush(attempt);
  {
    std::lock_guard<std::mutex> lock(attempt.mu);
    // The last batch (points, artifacts, evaluation results or the final run record) failed to
    // send; retry: the record must reach the scheduler before CompleteRun ends the attempt.
    if (!attempt.pending.empty() || !attempt.artifacts.empty() || !attempt.evals.empty() ||
        attempt.record_version != attempt.record_sent) {
      return false;
    }
  }
  const ExitInfo& exit = *attempt.exit;
  // A preempted trainer that finished its last step first has simply succeeded.
  bool succeeded = exit.exit_code == 0 && exit.term_signal == 0 &&
                   (attempt.stop == StopReason::kNone || attempt.stop == StopReason::kPreempted);
  v1::CompleteRunRequest request;
  request.set_worker_id(worker_id);
  request.set_run_id(attempt.run_id());
  request.set_attempt(attempt.number());
  request.set_lease_token(attempt.lease_token());
  request.set_rank(attempt.rank());
  request.set_succeeded(succeeded);
  request.set_exit_code(exit.exit_code);
  request.set_term_signal(exit.term_signal);
  *request.mutable_energy() = *attempt.energy;
  if (!succeeded) {
    if (attempt.stop == StopReason::kShutdown) {
      request.set_failure_class(v1::FAILURE_CLASS_PREEMPTED);
      request.set_failure_evidence("the worker shut down");
    } else if (attempt.stop == StopReason::kPreempted) {
      request.set_failure_class(v1::FAILURE_CLASS_PREEMPTED);
      request.set_failure_evidence(
          exit.term_signal == 0 && exit.exit_code == runspec::kExitPreempted
              ? "preempted by the scheduler; the trainer checkpointed and exited 7"
              : absl::StrCat("preempted by the scheduler; ",
                             exit.term_signal != 0
                                 ? absl::StrCat("killed by signal ", exit.term_signal)
                                 : absl::StrCat("exit code ", exit.exit_code),
                             exit.term_signal == SIGKILL
                                 ? absl::StrCat(" after the grace period of ",
                                                absl::FormatDuration(options.preempt_grace))
                                 : ""));
    } else {
      runspec::TrainerExit trainer_exit;
      trainer_exit.exit_code = exit.exit_code;
      trainer_exit.term_signal = exit.term_signal;
      trainer_exit.stopped_by_worker = attempt.stop != StopReason::kNone;
      const int64_t oom_kills_now = ReadOomKills();
      if (attempt.oom_kills_at_start >= 0 && oom_kills_now >= 0) {
        trainer_exit.oom_kills = oom_kills_now - attempt.oom_kills_at_start;
      }
      {
        std::lock_guard<std::mutex> lock(attempt.mu);
        if (attempt.reported_failure) {
          trainer_exit.reported_class = attempt.reported_failure->failure_class;
          trainer_exit.reported_message = attempt.reported_failure->message;
        }
      }
      if (attempt.failed_health) {
        trainer_exit.failed_health_check = attempt.failed_health->name();
        trainer_exit.health_message = attempt.failed_health->message();
      }
      runspec::FailureClassification classified = runspec::ClassifyFailure(trainer_exit);
      request.set_failure_class(classified.failure_class);
      request.set_failure_evidence(classified.evidence);
    }
    // Lines are counted, not bytes: one huge line must not push the report past gRPC's limit.
    constexpr size_t kMaxMessageBytes = 8192;
    std::string tail = TailOfFile(attempt.dir + "/stderr.log", 20);
    if (tail.size() > kMaxMessageBytes) {
      tail = absl::StrCat("... (", tail.size() - kMaxMessageBytes, " bytes cut) ",
                          tail.substr(tail.size() - kMaxMessageBytes));
    }
    request.set_message(tail);
  }
  if (!attempt.rejected) {
    v1::CompleteRunResponse response;
    auto context = Context();
    absl::Status status = Call("CompleteRun", stub->CompleteRun(context.get(), request, &response));
    if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
        absl::IsAborted(status)) {
      return false;  // transient: report again on the next tick
    }
    if (status.ok()) {
      spdlog::info("run={} attempt={} rank={} ended exit_code={} signal={} -> {}", request.run_id(),
                   request.attempt(), request.rank(), exit.exit_code, exit.term_signal,
                   services::RunStateName(response.state()));
    }
  }
  finished->Add({{"outcome", succeeded ? "succeeded" : "failed"}}).Increment();
  attempt.reader.join();
  return true;
}

void Agent::Impl::Tick() {
  if (worker_id == 0) {
    bool children_gone = true;
    for (auto& attempt : attempts) children_gone &= attempt->exit.has_value();
    if (children_gone && !Register().ok()) return;
  }
  if (worker_id != 0 && Now() >= next_heartbeat) Heartbeat();
  for (auto& attempt : attempts) {
    if (!attempt->exit.has_value()) attempt->meter->Sample(Now());
  }
  if (Now() >= next_report) {
    next_report = Now() + options.report_interval;
    for (auto& attempt : attempts) {
      if (!attempt->exit.has_value()) Flush(*attempt);
    }
  }
  for (auto it = attempts.begin(); it != attempts.end();) {
    if (Finish(**it)) {
      it = attempts.erase(it);
      next_lease_poll = absl::InfinitePast();  // a slot is free: ask for a run now
    } else {
      it = std::next(it);
    }
  }
  if (worker_id != 0 && !stop_requested.HasBeenNotified()) LeaseAndStart();
  active_gauge->Set(static_cast<double>(attempts.size()));
}

void Agent::Impl::Drain() {
  if (worker_id == 0) return;
  // Before the runs are handed back: else the scheduler may admit them to this worker again.
  v1::DrainRequest request;
  request.set_worker_id(worker_id);
  request.set_reason("the worker is shutting down");
  v1::DrainResponse response;
  auto context = Context();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (Call("Drain", stub->Drain(context.get(), request, &response)).ok()) {
    spdlog::info("draining: the scheduler admits nothing more here ({} admitted runs requeued)",
                 response.requeued());
  }
}

void Agent::Impl::Shutdown() {
  Drain();  // best effort: an older scheduler answers UNIMPLEMENTED
  HandBackLeases();
  for (auto& attempt : attempts) {
    // One that already ended keeps its own outcome (a success must not become PREEMPTED).
    if (!attempt->exit.has_value()) attempt->exit = attempt->child->Poll();
    if (!attempt->exit.has_value()) RequestStop(*attempt, StopReason::kShutdown, SIGTERM);
  }
  absl::Time give_up = Now() + options.stop_grace + options.rpc_timeout;
  while (!attempts.empty() && Now() < give_up) {
    for (auto it = attempts.begin(); it != attempts.end();) {
      it = Finish(**it) ? attempts.erase(it) : std::next(it);
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  for (auto& attempt : attempts) {
    attempt->child->Signal(SIGKILL);
    attempt->child->Wait();  // the child is gone, so its end of the pipe is closed...
    attempt->reader.join();  // ...and the reader has seen EOF
    attempt->child.reset();  // only now close our end
  }
  attempts.clear();
  fork_server.reset();
}

Agent::Agent(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() = default;

absl::StatusOr<std::unique_ptr<Agent>> Agent::Create(AgentOptions options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (options.name.empty()) options.name = absl::StrCat(Hostname(), ":", ::getpid());
  if (options.trainer_path.empty()) options.trainer_path = SelfDirectory() + "/scalelab-train";
  static services::RealClock* const kRealClock = new services::RealClock();
  if (options.clock == nullptr) options.clock = kRealClock;
  if (::access(options.trainer_path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("trainer: ", options.trainer_path,
                                            " is not an executable file (set --trainer)"));
  }
  std::error_code error;
  std::filesystem::create_directories(options.work_dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("work_dir ", options.work_dir, ": ", error.message()));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->stub = v1::WorkerService::NewStub(services::MakeChannel(options.scheduler_address));
  auto& registry = *impl->registry;
  impl->slots_gauge = &prometheus::BuildGauge()
                           .Name("scalelab_worker_slots")
                           .Help("Attempts this worker runs at once.")
                           .Register(registry)
                           .Add({});
  impl->active_gauge = &prometheus::BuildGauge()
                            .Name("scalelab_worker_runs_active")
                            .Help("Attempts running or being reported now.")
                            .Register(registry)
                            .Add({});
  impl->finished = &prometheus::BuildCounter()
                        .Name("scalelab_worker_runs_finished_total")
                        .Help("Attempts ended on this worker, by outcome.")
                        .Register(registry);
  impl->points_forwarded = &prometheus::BuildCounter()
                                .Name("scalelab_worker_metric_points_forwarded_total")
                                .Help("Metric points sent to the scheduler.")
                                .Register(registry)
                                .Add({});
  impl->evals_forwarded = &prometheus::BuildCounter()
                               .Name("scalelab_worker_evals_forwarded_total")
                               .Help("Evaluation results sent to the scheduler and stored.")
                               .Register(registry)
                               .Add({});
  impl->tokens_trained = &prometheus::BuildCounter()
                              .Name("scalelab_worker_tokens_trained_total")
                              .Help("Training tokens reported by this worker's attempts.")
                              .Register(registry)
                              .Add({});
  impl->rpc_failures = &prometheus::BuildCounter()
                            .Name("scalelab_worker_rpc_failures_total")
                            .Help("Calls to the scheduler that failed.")
                            .Register(registry)
                            .Add({});
  impl->energy_joules = &prometheus::BuildCounter()
                             .Name("scalelab_worker_energy_joules_total")
                             .Help(
                                 "Energy this worker's ended attempts used, by how it was "
                                 "measured (nvml, rapl, model).")
                             .Register(registry);
  impl->slots_gauge->Set(options.cpu_slots);
  if (!options.metrics_address.empty()) {
    auto server = services::MetricsServer::Start(options.metrics_address, impl->registry);
    if (!server.ok()) return server.status();
    impl->metrics_server = *std::move(server);
  }
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

absl::Status Agent::Run() {
  spdlog::info("worker {} connecting to {} trainer={} metrics_port={}", impl_->options.name,
               impl_->options.scheduler_address, impl_->options.trainer_path, metrics_port());
  impl_->StartForkServer();
  while (!impl_->stop_requested.HasBeenNotified()) {
    impl_->WaitForWake(absl::Milliseconds(impl_->tick_soon ? 5 : 100));
    impl_->tick_soon = false;
    if (impl_->stop_requested.HasBeenNotified()) break;
    impl_->Tick();
  }
  impl_->Shutdown();
  spdlog::info("worker {} stopped", impl_->options.name);
  return absl::OkStatus();
}

void Agent::Stop() {
  impl_->stop_requested.Notify();
  impl_->Wake();
}

int Agent::metrics_port() const {
  return impl_->metrics_server ? impl_->metrics_server->port() : 0;
}

}  // namespace scalelab::worker
