// The worker's fork server path with the real scalelab-train: a run forked by
// `scalelab-train --serve` (model/fork_server.h) behaves as one started by fork/exec, and a
// killed worker leaves no trainer behind.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "runspec/exit_codes.h"
#include "tests/model/test_data.h"
#include "worker/child_process.h"
#include "worker/trainer_command.h"

namespace scalelab::worker {
namespace {

using model::testing::RepetitiveCorpus;
using model::testing::TempDir;
using model::testing::WriteSource;

std::string SpecYaml(const std::string& dir, const std::string& tokens) {
  return absl::StrCat("kind: RUN_KIND_PRETRAIN\noutput_dir: ", dir,
                      "/out\nconfig:\n  model: {d_model: 16, n_layers: 1, n_heads: 2, seq_len: "
                      "16}\n  data: {sources: {web: ",
                      dir, "/web}}\n  train: {tokens: ", tokens,
                      ", batch_tokens: 64, lr: 3e-3, seed: 3}\n  eval: {val_tokens: 256}\n");
}

struct Outcome {
  std::vector<std::string> lines;  // stdout, wall-clock figures cut out
  ExitInfo exit;
};

// Runs `argv` to its end, by fork/exec or through `server`; `stop_after_first_line` sends SIGTERM
// once the first stdout line arrived.
Outcome RunChild(ForkServer* server, const std::vector<std::string>& argv, const TempDir& dir,
                 bool stop_after_first_line = false) {
  const ChildOptions options{
      argv, dir.path() + "/stderr.txt", "", {{"OMP_WAIT_POLICY", "PASSIVE"}}};
  auto child =
      server != nullptr ? ChildProcess::SpawnWith(*server, options) : ChildProcess::Spawn(options);
  REQUIRE(child.ok());
  std::string out;
  char buffer[4096];
  ssize_t got;
  while ((got = ::read((*child)->stdout_fd(), buffer, sizeof(buffer))) > 0) {
    out.append(buffer, static_cast<size_t>(got));
    if (stop_after_first_line && out.find('\n') != std::string::npos) {
      (*child)->Signal(SIGTERM);
      stop_after_first_line = false;
    }
  }
  Outcome outcome;
  outcome.exit = (*child)->Wait();
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    // Timing differs between two runs; everything else must not.
    if (line.find("\"tokens_per_s\"") != absl::string_view::npos) continue;
    const size_t wall = line.find(",\"wall_time_s\"");
    outcome.lines.emplace_back(line.substr(0, wall));
  }
  return outcome;
}

TEST_CASE("A run through the fork server prints the same lines and exits as by fork/exec",
          "[worker][fork_server]") {
  TempDir dir;
  WriteSource(dir, "web", RepetitiveCorpus(20000));
  const std::string spec = dir.Write("spec.yaml", SpecYaml(dir.path(), "1280"));
  auto server = ForkServer::Start(SCALELAB_TRAIN_BINARY, dir.path() + "/fork.sock",
                                  dir.path() + "/server.log", {{"OMP_WAIT_POLICY", "PASSIVE"}});
  REQUIRE(server.ok());
  const std::vector<std::string> train{SCALELAB_TRAIN_BINARY, "--spec=" + spec, "--threads=1"};

  const Outcome direct = RunChild(nullptr, train, dir);
  const Outcome forked = RunChild(server->get(), train, dir);
  REQUIRE(direct.exit.exit_code == 0);
  CHECK(forked.exit.exit_code == 0);
  CHECK(forked.exit.term_signal == 0);
  REQUIRE(direct.lines.size() > 20);  // metrics of 20 steps, records, the final artifact
  CHECK(forked.lines == direct.lines);
  // Nothing but the server's own thread when it forks (no OpenBLAS or OpenMP pool).
  std::error_code error;
  const auto tasks =
      std::filesystem::directory_iterator(absl::StrCat("/proc/", (*server)->pid(), "/task"), error);
  CHECK(std::distance(tasks, std::filesystem::directory_iterator()) == 1);

  // An invalid flag (exit 2), missing data (exit 3) and a SIGTERM: the same ends either way.
  const std::vector<std::vector<std::string>> failing{
      {SCALELAB_TRAIN_BINARY, "--spec=" + spec, "--bogus=1"},
      {SCALELAB_TRAIN_BINARY, "--spec=" + spec, "--set=data.sources.web=" + dir.path() + "/none"}};
  for (const std::vector<std::string>& argv : failing) {
    const Outcome one = RunChild(nullptr, argv, dir);
    const Outcome two = RunChild(server->get(), argv, dir);
    INFO(argv.back());
    CHECK(one.exit.exit_code != 0);
    CHECK(two.exit.exit_code == one.exit.exit_code);
    CHECK(ClassifyExit(two.exit, false) == ClassifyExit(one.exit, false));
  }
  const std::string long_spec = dir.Write("long.yaml", SpecYaml(dir.path(), "1e8"));
  const std::vector<std::string> long_run{SCALELAB_TRAIN_BINARY, "--spec=" + long_spec};
  const Outcome stopped_direct = RunChild(nullptr, long_run, dir, true);
  const Outcome stopped_forked = RunChild(server->get(), long_run, dir, true);
  // SIGTERM during training ends the trainer at the next step with a checkpoint and
  // kExitPreempted (preemption); before its handler is installed it is killed by the signal.
  for (const Outcome* stopped : {&stopped_direct, &stopped_forked}) {
    const bool preempted = stopped->exit.term_signal == 0 &&
                           stopped->exit.exit_code == scalelab::runspec::kExitPreempted;
    const bool killed = stopped->exit.term_signal == SIGTERM && stopped->exit.exit_code == -1;
    CHECK((preempted || killed));
  }
}

bool Alive(pid_t pid) {
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  if (text.empty()) return false;
  const size_t close = text.rfind(')');
  return close != std::string::npos && close + 2 < text.size() && text[close + 2] != 'Z';
}

TEST_CASE("Killing the worker kills the fork server and the runs it forked",
          "[worker][fork_server]") {
  TempDir dir;
  WriteSource(dir, "web", RepetitiveCorpus(20000));
  const std::string spec = dir.Write("spec.yaml", SpecYaml(dir.path(), "1e8"));
  const std::string pids_file = dir.path() + "/pids.txt";
  // The "worker": a process of its own that starts a fork server and one long run through it,
  // writes both pids, and waits to be killed.
  const pid_t worker = ::fork();
  REQUIRE(worker >= 0);
  if (worker == 0) {
    auto server = ForkServer::Start(SCALELAB_TRAIN_BINARY, dir.path() + "/fork.sock",
                                    dir.path() + "/server.log", {{"OMP_WAIT_POLICY", "PASSIVE"}});
    if (!server.ok()) ::_exit(1);
    auto child = ChildProcess::SpawnWith(
        **server, {{SCALELAB_TRAIN_BINARY, "--spec=" + spec}, dir.path() + "/stderr.txt", "", {}});
    if (!child.ok()) ::_exit(2);
    std::ofstream(pids_file + ".tmp") << (*server)->pid() << " " << (*child)->pid() << "\n";
    std::rename((pids_file + ".tmp").c_str(), pids_file.c_str());
    while (true) ::pause();
  }
  pid_t server_pid = 0;
  pid_t trainer_pid = 0;
  for (int wait_idx = 0; wait_idx < 600 && trainer_pid == 0; ++wait_idx) {
    std::ifstream(pids_file) >> server_pid >> trainer_pid;
    if (trainer_pid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(trainer_pid > 0);
  CHECK(Alive(server_pid));
  CHECK(Alive(trainer_pid));
  REQUIRE(::kill(worker, SIGKILL) == 0);
  REQUIRE(::waitpid(worker, nullptr, 0) == worker);
  bool gone = false;
  for (int wait_idx = 0; wait_idx < 100 && !gone; ++wait_idx) {
    gone = !Alive(server_pid) && !Alive(trainer_pid);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(gone);
}

}  // namespace
}  // namespace scalelab::worker
