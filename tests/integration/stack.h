// A real ScaleLab stack for integration tests: the scheduler in-process on port 0 over a fresh
// PostgreSQL database, workers as real `scalelab-worker` child processes that run the real
// `scalelab-train`, and a small synthetic corpus prepared by the real `scalelab data` code.
#ifndef SCALELAB_TESTS_INTEGRATION_STACK_H_
#define SCALELAB_TESTS_INTEGRATION_STACK_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scalelab/v1/results.grpc.pb.h"
#include "scalelab/v1/sweep.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "worker/child_process.h"

namespace scalelab::testing {

// The body of an HTTP GET to 127.0.0.1:port/path ("" when the request fails).
std::string HttpGet(int port, const std::string& path);

class Stack {
 public:
  // lease_ttl is short so that a killed worker's lease ends within seconds. database_url "" = a
  // fresh database of the test process's PostgreSQL. Retries wait 0.2-2 s (not the default 10 s).
  explicit Stack(absl::Duration lease_ttl = absl::Seconds(3), const std::string& database_url = "");
  ~Stack();

  // Starts `scalelab-worker` with `slots` CPU slots and /metrics on a free port; returns its index.
  // work_dir "" = its own folder; workers given one folder share checkpoints, as nodes on a
  // shared file system do.
  int StartWorker(int slots = 1, const std::string& work_dir = "");
  // The worker's command line against the scheduler at `scheduler_port`.
  std::vector<std::string> WorkerArgv(int index, int slots, int scheduler_port,
                                      const std::string& work_dir) const;
  // The worker's /metrics port, read from its start-up log line (0 if not found).
  int WorkerMetricsPort(int index) const;
  worker::ChildProcess& worker(int index) { return *workers_[index]; }
  // Adds a worker started elsewhere (another scheduler's), killed with the stack.
  int AdoptWorker(std::unique_ptr<worker::ChildProcess> child) {
    workers_.push_back(std::move(child));
    return static_cast<int>(workers_.size()) - 1;
  }
  std::string WorkerLog(int index) const;

  // A manifest for tiny runs over the test corpus; `grid` is the YAML of sweep.grid.
  std::string Manifest(const std::string& name, double tokens, const std::string& grid) const;
  v1::SubmitSweepResponse Submit(const std::string& manifest, const std::string& key = "");
  v1::Sweep GetSweep(int64_t sweep_id);
  std::vector<v1::Run> ListRuns(int64_t sweep_id);
  // Polls until `done(runs)` is true; FAILs with the worker logs after `timeout_s`.
  std::vector<v1::Run> WaitForRuns(int64_t sweep_id,
                                   const std::function<bool(const std::vector<v1::Run>&)>& done,
                                   double timeout_s);

  v1::SweepService::Stub& sweeps() { return *sweeps_; }
  v1::ResultsService::Stub& results() { return *results_; }
  scheduler::Scheduler& scheduler() { return *scheduler_; }
  const std::string& dir() const { return dir_; }
  const std::string& database_url() const { return database_url_; }

 private:
  std::string dir_;
  std::string database_url_;
  std::unique_ptr<scheduler::Scheduler> scheduler_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::unique_ptr<v1::ResultsService::Stub> results_;
  std::vector<std::unique_ptr<worker::ChildProcess>> workers_;
};

}  // namespace scalelab::testing

#endif  // SCALELAB_TESTS_INTEGRATION_STACK_H_
