#include "tests/integration/stack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/api/grpc_server.h"
#include "services/cli/data_prep.h"
#include "tests/support/pg_harness.h"

namespace scalelab::testing {
namespace {

// Deterministic English-like text: learnable structure (a small vocabulary, fixed phrases), so a
// tiny model beats the unigram entropy within a few thousand steps' worth of tokens.
std::string SyntheticCorpus(size_t bytes) {
  const std::vector<std::string> subjects = {"the cat",   "a dog",     "the old man",
                                             "my sister", "the river", "a small bird"};
  const std::vector<std::string> verbs = {"sees", "follows", "remembers", "crosses", "finds"};
  const std::vector<std::string> objects = {"the house", "a green field", "the long road",
                                            "an open door", "the morning light"};
  std::mt19937 rng(7);
  std::string text;
  while (text.size() < bytes) {
    absl::StrAppend(&text, subjects[rng() % subjects.size()], " ", verbs[rng() % verbs.size()], " ",
                    objects[rng() % objects.size()], ".\n");
  }
  return text;
}

}  // namespace

Stack::Stack(absl::Duration lease_ttl, const std::string& database_url) {
  char tmpl[] = "/tmp/scalelab_it_XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  dir_ = tmpl;
  {
    std::ofstream corpus(dir_ + "/corpus.txt");
    corpus << SyntheticCorpus(400'000);
  }
  cli::DataPrepOptions data;
  data.input = dir_ + "/corpus.txt";
  data.output = dir_ + "/data/text";
  auto prepared = cli::PrepareByteShards(data);
  REQUIRE(prepared.ok());

  scheduler::SchedulerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_address = "127.0.0.1:0";
  database_url_ = database_url.empty() ? FreshDatabaseUrl() : database_url;
  options.database_url = database_url_;
  options.retry.base_backoff = absl::Milliseconds(200);
  options.retry.max_backoff = absl::Seconds(2);
  options.lease_ttl = lease_ttl;
  options.heartbeat_interval = lease_ttl / 6;
  options.reap_interval = absl::Milliseconds(250);
  auto scheduler = scheduler::Scheduler::Start(options);
  if (!scheduler.ok()) FAIL("scheduler did not start: " << scheduler.status().ToString());
  scheduler_ = *std::move(scheduler);
  auto channel = services::MakeChannel(absl::StrCat("127.0.0.1:", scheduler_->grpc_port()));
  sweeps_ = v1::SweepService::NewStub(channel);
  results_ = v1::ResultsService::NewStub(channel);
}

Stack::~Stack() {
  for (auto& worker : workers_) worker->Signal(SIGKILL);
  workers_.clear();
  scheduler_->Shutdown();
  std::error_code error;
  std::filesystem::remove_all(dir_, error);
}

std::vector<std::string> Stack::WorkerArgv(int index, int slots, int scheduler_port,
                                           const std::string& work_dir) const {
  return {absl::StrCat(SCALELAB_BIN_DIR, "/scalelab-worker"),
          absl::StrCat("--scheduler=127.0.0.1:", scheduler_port),
          absl::StrCat("--name=test-worker-", index), absl::StrCat("--cpu_slots=", slots),
          // Gangs meet at rank 0's worker address: loopback, whatever the hostname resolves to.
          "--address=127.0.0.1", absl::StrCat("--data_root=", dir_),
          absl::StrCat("--work_dir=", work_dir),
          // A test machine's /tmp may be nearly full; the disk check must not fail the tests.
          "--min_free_disk_bytes=0", "--metrics_listen=127.0.0.1:0"};
}

int Stack::StartWorker(int slots, const std::string& shared_work_dir) {
  int index = static_cast<int>(workers_.size());
  std::string work_dir =
      shared_work_dir.empty() ? absl::StrCat(dir_, "/worker-", index) : shared_work_dir;
  std::filesystem::create_directories(work_dir);
  auto child =
      worker::ChildProcess::Spawn({WorkerArgv(index, slots, scheduler_->grpc_port(), work_dir),
                                   absl::StrCat(dir_, "/worker-", index, ".log"),
                                   "",
                                   {}});
  REQUIRE(child.ok());
  workers_.push_back(*std::move(child));
  return index;
}

int Stack::WorkerMetricsPort(int index) const {
  std::ifstream log(absl::StrCat(dir_, "/worker-", index, ".log"));
  std::string line;
  while (std::getline(log, line)) {
    size_t at = line.find("metrics_port=");
    if (at != std::string::npos) return std::atoi(line.c_str() + at + strlen("metrics_port="));
  }
  return 0;
}

std::string HttpGet(int port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    std::string request =
        absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if (::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) response.append(buffer, n);
    }
  }
  ::close(fd);
  size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

std::string Stack::WorkerLog(int index) const {
  return worker::TailOfFile(absl::StrCat(dir_, "/worker-", index, ".log"), 40);
}

std::string Stack::Manifest(const std::string& name, double tokens, const std::string& grid) const {
  return absl::StrCat(
      "name: ", name, "\n", "project: integration\n", "kind: pretrain\n", "base:\n",
      "  model: {family: transformer, d_model: 16, n_layers: 1, n_heads: 2, seq_len: 32}\n",
      "  data: {sources: {text: data/text}}\n", "  train: {tokens: ", tokens,
      ", batch_tokens: 1024, lr: 1e-2, schedule: cosine, warmup: 0.05}\n",
      "  eval: {every_tokens: ", tokens / 4, ", val_tokens: 4096}\n", "  resources: {cpus: 1}\n",
      "sweep:\n", "  grid: ", grid, "\n");
}

v1::SubmitSweepResponse Stack::Submit(const std::string& manifest, const std::string& key) {
  v1::SubmitSweepRequest request;
  request.set_manifest_yaml(manifest);
  request.set_manifest_name("test.yaml");
  request.set_idempotency_key(key);
  v1::SubmitSweepResponse response;
  grpc::ClientContext context;
  grpc::Status status = sweeps_->SubmitSweep(&context, request, &response);
  if (!status.ok()) FAIL("SubmitSweep: " << status.error_message());
  return response;
}

v1::Sweep Stack::GetSweep(int64_t sweep_id) {
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  v1::Sweep sweep;
  grpc::ClientContext context;
  grpc::Status status = sweeps_->GetSweep(&context, request, &sweep);
  if (!status.ok()) FAIL("GetSweep: " << status.error_message());
  return sweep;
}

std::vector<v1::Run> Stack::ListRuns(int64_t sweep_id) {
  v1::ListRunsRequest request;
  request.set_sweep_id(sweep_id);
  v1::ListRunsResponse response;
  grpc::ClientContext context;
  grpc::Status status = sweeps_->ListRuns(&context, request, &response);
  if (!status.ok()) FAIL("ListRuns: " << status.error_message());
  return {response.runs().begin(), response.runs().end()};
}

std::vector<v1::Run> Stack::WaitForRuns(
    int64_t sweep_id, const std::function<bool(const std::vector<v1::Run>&)>& done,
    double timeout_s) {
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    std::vector<v1::Run> runs = ListRuns(sweep_id);
    if (done(runs)) return runs;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::string logs;
  for (size_t i = 0; i < workers_.size(); ++i) {
    absl::StrAppend(&logs, "--- worker ", i, " ---\n", WorkerLog(static_cast<int>(i)), "\n");
  }
  std::string states;
  for (const v1::Run& run : ListRuns(sweep_id)) {
    absl::StrAppend(&states, run.id(), ":", v1::RunState_Name(run.state()), " ");
  }
  FAIL("timed out after " << timeout_s << " s; runs: " << states << "\n" << logs);
  return {};
}

}  // namespace scalelab::testing
