// scalelab-spawn-bench: start-to-exit latency of minimal trainer runs started the worker's two
// ways, in one run: fork/exec of scalelab-train per run (LibTorch's libraries load each time)
// and a fork server (`scalelab-train --serve`) that loaded them once and forks each run.
// A minimal run is a one-step pretraining run of a 1-layer d_model 16 model on a tiny shard,
// with its stdout read to EOF, as the worker reads it. Prints both means and medians and the
// ratio.
//
//   scalelab-spawn-bench [--runs=20] [--trainer=build/bin/scalelab-train] [--mode=train|help]

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "worker/child_process.h"

ABSL_FLAG(int, runs, 20, "minimal runs per way");
ABSL_FLAG(std::string, trainer, "", "scalelab-train; empty = next to this binary");
ABSL_FLAG(std::string, mode, "train", "train: a one-step run; help: scalelab-train --help");

namespace {

using Clock = std::chrono::steady_clock;
using scalelab::worker::ChildOptions;
using scalelab::worker::ChildProcess;
using scalelab::worker::ForkServer;

// A token shard in the llm.c layout (model/data.h): 256 int32 header, uint16 tokens.
void WriteShard(const std::string& path, int tokens) {
  std::vector<int32_t> header(256, 0);
  header[0] = 20240520;
  header[1] = 1;
  header[2] = tokens;
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), header.size() * 4);
  for (int token_idx = 0; token_idx < tokens; ++token_idx) {
    const uint16_t token = static_cast<uint16_t>('a' + token_idx % 26);
    out.write(reinterpret_cast<const char*>(&token), 2);
  }
}

// Seconds from the start request to the child's exit with its stdout read to EOF.
double TimeOneRun(ForkServer* server, const ChildOptions& options) {
  const Clock::time_point start = Clock::now();
  auto child =
      server != nullptr ? ChildProcess::SpawnWith(*server, options) : ChildProcess::Spawn(options);
  if (!child.ok()) {
    std::fprintf(stderr, "spawn failed: %s\n", child.status().ToString().c_str());
    std::exit(1);
  }
  char buffer[4096];
  while (::read((*child)->stdout_fd(), buffer, sizeof(buffer)) > 0) {
  }
  const scalelab::worker::ExitInfo exit = (*child)->Wait();
  if (exit.exit_code != 0) {
    std::fprintf(stderr, "run failed (exit %d, signal %d); see %s\n", exit.exit_code,
                 exit.term_signal, options.stderr_path.c_str());
    std::exit(1);
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Figures {
  double mean_s = 0;
  double median_s = 0;
};

Figures Summarize(std::vector<double> seconds) {
  std::sort(seconds.begin(), seconds.end());
  Figures figures;
  for (double value : seconds) figures.mean_s += value / static_cast<double>(seconds.size());
  figures.median_s = seconds[seconds.size() / 2];
  return figures;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::string trainer = absl::GetFlag(FLAGS_trainer);
  if (trainer.empty()) {
    trainer =
        (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "scalelab-train").string();
  }
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("scalelab-spawn-bench-", ::getpid()))
          .string();
  std::filesystem::create_directories(dir + "/web");
  WriteShard(dir + "/web/train.bin", 4096);
  WriteShard(dir + "/web/val.bin", 1024);
  std::ofstream(dir + "/spec.yaml")
      << "kind: RUN_KIND_PRETRAIN\noutput_dir: " << dir << "/out\nconfig:\n"
      << "  model: {d_model: 16, n_layers: 1, n_heads: 2, seq_len: 16}\n"
      << "  data: {sources: {web: " << dir << "/web}}\n"
      << "  train: {tokens: 64, batch_tokens: 64, lr: 3e-3}\n"
      << "  eval: {val_tokens: 64}\n";
  const std::vector<std::string> argv_of_run =
      absl::GetFlag(FLAGS_mode) == "help"
          ? std::vector<std::string>{trainer, "--help"}
          : std::vector<std::string>{trainer, "--spec=" + dir + "/spec.yaml", "--threads=1"};
  // The worker's environment for a trainer (worker/trainer_command.h).
  const std::vector<std::pair<std::string, std::string>> env{{"OMP_WAIT_POLICY", "PASSIVE"},
                                                             {"CUDA_VISIBLE_DEVICES", ""}};
  const ChildOptions options{argv_of_run, dir + "/stderr.txt", "", env};

  const Clock::time_point server_start = Clock::now();
  auto server = ForkServer::Start(trainer, dir + "/fork.sock", dir + "/server.log", env);
  if (!server.ok()) {
    std::fprintf(stderr, "fork server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  const double server_ready_s = std::chrono::duration<double>(Clock::now() - server_start).count();

  // Interleaved, so that a change in the machine's load hits both ways alike.
  std::vector<double> exec_s;
  std::vector<double> forked_s;
  TimeOneRun(nullptr, options);  // warm the page cache for both
  for (int run_idx = 0; run_idx < runs; ++run_idx) {
    exec_s.push_back(TimeOneRun(nullptr, options));
    forked_s.push_back(TimeOneRun(server->get(), options));
  }
  const Figures exec = Summarize(exec_s);
  const Figures forked = Summarize(forked_s);
  std::printf("scalelab-spawn-bench: %d minimal runs (%s) each way, start request to exit\n", runs,
              absl::GetFlag(FLAGS_mode).c_str());
  std::printf("  fork/exec    mean %.4f s  median %.4f s  (%.1f runs/s)\n", exec.mean_s,
              exec.median_s, 1.0 / exec.mean_s);
  std::printf("  fork server  mean %.4f s  median %.4f s  (%.1f runs/s); server ready in %.3f s\n",
              forked.mean_s, forked.median_s, 1.0 / forked.mean_s, server_ready_s);
  std::printf("  ratio fork/exec / fork server: %.1fx (mean), %.1fx (median)\n",
              exec.mean_s / forked.mean_s, exec.median_s / forked.median_s);
  server->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
