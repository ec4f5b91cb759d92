// Submitting a big sweep, end to end: SubmitSweep over gRPC to the real scheduler (in-process, on
// a real port, its store on a durable private PostgreSQL) with a manifest whose grid expands to
// --runs runs (train.seed x train.lr): parse, validate, expand, store every run and its
// transition, in one transaction. Target (issue 9): 100,000 runs in under 5 s.
// Also timed apart: ParseManifest + ExpandPipeline alone (no store), to show where time goes.
// One JSON line per figure.
//
//   build/bin/scalelab-submit-bench [--runs=100000] [--repeats=2]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "scalelab/v1/sweep.grpc.pb.h"
#include "scheduler/expand.h"
#include "scheduler/manifest.h"
#include "scheduler/scheduler.h"
#include "services/common/logging.h"

ABSL_FLAG(int, runs, 100000, "runs in the sweep (a multiple of 100: seeds x 100 learning rates)");
ABSL_FLAG(int, repeats, 2, "sweeps submitted (each a new sweep; the best and last are printed)");

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Manifest(int runs, int repeat) {
  std::string seeds;
  for (int seed = 0; seed < runs / 100; ++seed) absl::StrAppend(&seeds, seed > 0 ? ", " : "", seed);
  std::string lrs;
  for (int lr_idx = 1; lr_idx <= 100; ++lr_idx) {
    absl::StrAppend(&lrs, lr_idx > 1 ? ", " : "", lr_idx, "e-5");
  }
  return absl::StrCat(
      "name: submit-bench-", repeat,
      "\nproject: bench\nkind: pretrain\n"
      "base:\n"
      "  model: {family: transformer, n_layers: 2, n_heads: 4, d_model: 64, seq_len: 64}\n"
      "  data: {sources: {gcide: data/gcide}}\n"
      "  train: {batch_tokens: 4096, tokens: 1e6, schedule: cosine, warmup: 0.05}\n"
      "  resources: {cpus: 1}\n"
      "sweep:\n  grid:\n    train.seed: [",
      seeds, "]\n    train.lr: [", lrs, "]\n");
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (auto status = scalelab::services::InitLogging("bench", "warn"); !status.ok()) return 1;
  const int runs = absl::GetFlag(FLAGS_runs);
  const std::string dir =
      (std::filesystem::temp_directory_path() / absl::StrCat("scalelab_submit_bench_", getpid()))
          .string();
  scalelab::scheduler::SchedulerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.metrics_address = "";
  options.data_dir = dir;
  options.run_fitter = false;
  auto scheduler = scalelab::scheduler::Scheduler::Start(options);
  if (!scheduler.ok()) {
    std::fprintf(stderr, "scheduler: %s\n", scheduler.status().ToString().c_str());
    return 1;
  }
  auto stub = scalelab::v1::SweepService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*scheduler)->grpc_port()), grpc::InsecureChannelCredentials()));

  const std::string manifest = Manifest(runs, 0);
  auto start = Clock::now();
  auto spec = scalelab::scheduler::ParseManifest(manifest, "bench.yaml");
  const double parse_s = SecondsSince(start);
  if (!spec.ok()) {
    std::fprintf(stderr, "manifest: %s\n", spec.status().ToString().c_str());
    return 1;
  }
  start = Clock::now();
  auto expanded = scalelab::scheduler::ExpandPipeline(*spec);
  const double expand_s = SecondsSince(start);
  if (!expanded.ok() || static_cast<int>(expanded->size()) != runs) {
    std::fprintf(stderr, "expand: %s\n", expanded.status().ToString().c_str());
    return 1;
  }
  std::printf(
      "{\"bench\":\"submit\",\"stage\":\"parse+validate\",\"runs\":%d,\"seconds\":%.3f}\n"
      "{\"bench\":\"submit\",\"stage\":\"expand\",\"runs\":%d,\"seconds\":%.3f}\n",
      runs, parse_s, runs, expand_s);

  {
    // The store alone: CreateSweep with the expanded runs, as SweepService hands them over.
    std::vector<scalelab::services::NewRun> new_runs;
    new_runs.reserve(expanded->size());
    for (scalelab::scheduler::ExpandedRun& run : *expanded) {
      scalelab::services::NewRun stored;
      stored.index = run.index;
      stored.config = std::move(run.config);
      stored.overrides = std::move(run.overrides);
      stored.kind = run.kind;
      stored.stage = run.stage;
      stored.parent_index = run.parent_index;
      new_runs.push_back(std::move(stored));
    }
    spec->set_name("submit-bench-store");
    start = Clock::now();
    auto created = (*scheduler)->store()->CreateSweep(*spec, manifest, "", new_runs);
    const double store_s = SecondsSince(start);
    if (!created.ok()) {
      std::fprintf(stderr, "CreateSweep: %s\n", created.status().ToString().c_str());
      return 1;
    }
    std::printf(
        "{\"bench\":\"submit\",\"stage\":\"store (CreateSweep)\",\"runs\":%d,"
        "\"seconds\":%.3f}\n",
        runs, store_s);
    std::fflush(stdout);
  }

  double best_s = 1e9;
  for (int repeat = 0; repeat < absl::GetFlag(FLAGS_repeats); ++repeat) {
    scalelab::v1::SubmitSweepRequest request;
    request.set_manifest_yaml(Manifest(runs, repeat));
    request.set_manifest_name("bench.yaml");
    scalelab::v1::SubmitSweepResponse response;
    grpc::ClientContext context;
    start = Clock::now();
    grpc::Status status = stub->SubmitSweep(&context, request, &response);
    const double seconds = SecondsSince(start);
    if (!status.ok()) {
      std::fprintf(stderr, "SubmitSweep: %s\n", status.error_message().c_str());
      return 1;
    }
    best_s = std::min(best_s, seconds);
    std::printf(
        "{\"bench\":\"submit\",\"stage\":\"SubmitSweep end to end\",\"runs\":%d,"
        "\"seconds\":%.3f,\"runs_per_s\":%.0f,\"target_s\":5,\"meets_target\":%s}\n",
        runs, seconds, runs / seconds, seconds < 5 ? "true" : "false");
  }
  (*scheduler)->Shutdown();
  std::filesystem::remove_all(dir);
  return best_s < 5 ? 0 : 2;
}
