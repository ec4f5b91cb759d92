// scalelab-train: runs one attempt of a run from its RunSpec file and prints its metrics,
// artifacts and run record to stdout as JSON lines (model/metrics.h); two log lines and any
// error go to stderr.
//
//   scalelab-train --spec=FILE [--set=key=value]... [--device=cpu|cuda] [--threads=N]
//                  [--rank=R --world_size=W --rendezvous=HOST:PORT [--backend=gloo|nccl]]
//   scalelab-train --spec=FILE --generate --weights=final.pt --prompt=TEXT [--max_new_tokens=N]
//                  [--temperature=T] [--top_k=K] [--top_p=P] [--seed=S] [--samples=N]
//                  [--stop=TEXT]... [--set=...] [--device=...] [--threads=N]
//
//   scalelab-train --serve=SOCKET   (a fork server: model/fork_server.h)
//
// The worker passes --spec only, or starts one --serve per node and asks it for each run.
// --generate samples from trained weights instead of training: each sample (prompt + continuation,
// non-printable bytes escaped) is one line on stdout, the throughput goes to stderr. The overrides
// are for running by hand: --set takes a dotted RunConfig key (runspec/keys.h) and may be repeated.
// Exit codes: runspec/exit_codes.h (0 ok, 1 error, 2 invalid spec or flag, 3 data, 4 divergence, 5
// out of memory, 7 preempted: SIGTERM during pretraining or SFT, checkpoint written).
//
// This file only reads argv; model/spec_loader.h prepares the spec, model/trainer.h trains it,
// model/generation.h generates.

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "model/fork_server.h"
#include "model/generation.h"
#include "model/metrics.h"
#include "model/spec_loader.h"
#include "model/trainer.h"
#include "runspec/exit_codes.h"

namespace {

constexpr char kUsage[] =
    "usage: scalelab-train --spec=FILE [--set=key=value]... [--device=cpu|cuda] [--threads=N]\n"
    "  --spec     the run contract, a RunSpec as YAML or JSON (runspec/spec_file.h)\n"
    "  --set      override one RunConfig value by dotted key, e.g. --set=model.d_model=128;\n"
    "             repeatable, applied in order before defaults and validation\n"
    "  --device   override execution.device\n"
    "  --threads  override execution.threads\n"
    "  --rank, --world_size, --rendezvous, --local_rank, --backend\n"
    "             data parallelism by hand: start one process per rank with the same spec,\n"
    "             e.g. --rank=0 --world_size=2 --rendezvous=127.0.0.1:29500 (rank 0 listens\n"
    "             there; every rank takes world_size-th of train.batch_tokens; rank 0 reports)\n"
    "Metrics go to stdout as JSON lines; exit codes: 0 ok, 1 error, 2 invalid spec or flag,\n"
    "3 data error, 4 divergence, 5 out of memory.\n"
    "\n"
    "usage: scalelab-train --spec=FILE --generate --weights=FILE --prompt=TEXT [options]\n"
    "  --generate        sample from trained weights of the spec's model instead of training\n"
    "  --weights         the weights file, e.g. <output_dir>/final.pt\n"
    "  --prompt          the prompt text, encoded byte by byte\n"
    "  --max_new_tokens  tokens to add per sample (default 64)\n"
    "  --temperature     0 = greedy (default), > 0 samples\n"
    "  --top_k           keep the k most likely tokens (0 = off, default)\n"
    "  --top_p           nucleus sampling mass in (0, 1] (1 = off, default)\n"
    "  --seed            sampling seed (default 0)\n"
    "  --samples         continuations of the prompt (default 1)\n"
    "  --stop            end a sample when it produces this text (cut); repeatable\n"
    "Each sample is printed as one line on stdout (prompt + continuation, non-printable bytes\n"
    "escaped); tokens/s goes to stderr.\n"
    "\n"
    "usage: scalelab-train --serve=SOCKET\n"
    "  a fork server for the worker: loads the runtime once and forks one child per run\n"
    "  requested on the unix socket SOCKET (runspec/fork_protocol.h); ends on SIGTERM or\n"
    "  when its parent dies, killing its children.\n";

struct Args {
  std::string spec_path;
  scalelab::model::SpecOverrides overrides;
  bool help = false;
  bool generate = false;
  std::string weights_path;
  std::string prompt;
  int64_t samples = 1;
  scalelab::model::GenerateOptions generate_options;
  std::vector<std::string> generate_flags;  // The generate-only flags given, to refuse them alone.
};

bool TakesValue(absl::string_view name) {
  for (absl::string_view flag :
       {"spec", "set", "device", "threads", "rank", "world_size", "local_rank", "rendezvous",
        "backend", "weights", "prompt", "max_new_tokens", "temperature", "top_k", "top_p", "seed",
        "samples", "stop"}) {
    if (name == flag) return true;
  }
  return false;
}

template <typename T>
absl::Status ParseNumber(absl::string_view name, const std::string& value,
                         absl::string_view expected, T* out) {
  bool ok = false;
  if constexpr (std::is_floating_point_v<T>) {
    ok = absl::SimpleAtod(value, out);
  } else {
    ok = absl::SimpleAtoi(value, out);
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", name, "=", value, ": expected ", expected));
}

// Sets one generate-only flag; false when `name` is not one.
absl::StatusOr<bool> ParseGenerateFlag(absl::string_view name, const std::string& value,
                                       Args& args) {
  scalelab::model::GenerateOptions& options = args.generate_options;
  absl::Status status;
  if (name == "weights") {
    args.weights_path = value;
  } else if (name == "prompt") {
    args.prompt = value;
  } else if (name == "max_new_tokens") {
    status = ParseNumber(name, value, "an integer >= 0", &options.max_new_tokens);
  } else if (name == "temperature") {
    status = ParseNumber(name, value, "a number >= 0", &options.temperature);
  } else if (name == "top_k") {
    status = ParseNumber(name, value, "an integer >= 0", &options.top_k);
  } else if (name == "top_p") {
    status = ParseNumber(name, value, "a number in (0, 1]", &options.top_p);
  } else if (name == "seed") {
    status = ParseNumber(name, value, "an unsigned integer", &options.seed);
  } else if (name == "samples") {
    status = ParseNumber(name, value, "an integer >= 1", &args.samples);
    if (status.ok() && args.samples < 1) {
      status = absl::InvalidArgumentError(
          absl::StrCat("--samples=", value, ": expected an integer >= 1"));
    }
  } else if (name == "stop") {
    if (value.empty()) return absl::InvalidArgumentError("--stop: expected a non-empty text");
    options.stop.emplace_back(value.begin(), value.end());
    // Bytes, not chars: a signed char would turn bytes >= 0x80 into negative tokens.
    for (int64_t& token : options.stop.back()) token = static_cast<unsigned char>(token);
  } else {
    return false;
  }
  if (!status.ok()) return status;
  args.generate_flags.push_back(std::string(name));
  return true;
}

// Every argument is checked before anything runs, so an unknown flag or a malformed value exits
// 2 (the worker contract) with a message naming it, and never half-starts a run.
absl::StatusOr<Args> ParseArgs(int argc, char** argv) {
  Args args;
  for (int arg_idx = 1; arg_idx < argc; ++arg_idx) {
    absl::string_view arg = argv[arg_idx];
    if (arg == "--help" || arg == "-h") {
      args.help = true;
      continue;
    }
    if (arg == "--generate") {
      args.generate = true;
      continue;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\"; expected --flag=value"));
    }
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (TakesValue(name)) {
      if (arg_idx + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, ": expected a value"));
      }
      value = argv[++arg_idx];
    }
    if (name == "spec") {
      args.spec_path = value;
    } else if (name == "set") {
      args.overrides.set.push_back(value);
    } else if (name == "device") {
      args.overrides.device = value;
    } else if (name == "threads") {
      int threads = 0;
      if (!absl::SimpleAtoi(value, &threads) || threads < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("--threads=", value, ": expected a positive integer"));
      }
      args.overrides.threads = threads;
    } else if (name == "rank" || name == "world_size" || name == "local_rank") {
      int number = 0;
      if (!absl::SimpleAtoi(value, &number) || number < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, "=", value, ": expected an integer >= 0"));
      }
      (name == "rank"         ? args.overrides.rank
       : name == "world_size" ? args.overrides.world_size
                              : args.overrides.local_rank) = number;
    } else if (name == "rendezvous") {
      args.overrides.rendezvous = value;
    } else if (name == "backend") {
      args.overrides.backend = value;
    } else {
      absl::StatusOr<bool> generate_flag = ParseGenerateFlag(name, value, args);
      if (!generate_flag.ok()) return generate_flag.status();
      if (!*generate_flag) {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag --", name,
                         "; expected --spec, --set, --device, --threads, the data-parallel "
                         "flags or --generate with its flags (see --help)"));
      }
    }
  }
  if (args.help) return args;
  if (args.spec_path.empty()) {
    return absl::InvalidArgumentError("--spec: required; expected --spec=FILE (a RunSpec)");
  }
  if (!args.generate) {
    if (!args.generate_flags.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", args.generate_flags.front(), ": only valid with --generate"));
    }
    return args;
  }
  if (args.weights_path.empty()) {
    return absl::InvalidArgumentError("--weights: required with --generate; expected a file");
  }
  if (args.prompt.empty()) {
    return absl::InvalidArgumentError(
        "--prompt: required with --generate; expected a non-empty text");
  }
  // GenerateOptions names its fields as the flags are named.
  if (absl::Status status = args.generate_options.Validate(); !status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--", status.message()));
  }
  return args;
}

// One JSON line per metric, artifact, run record or evaluation result, flushed at once so the
// worker sees progress as it happens.
class StdoutJsonSink : public scalelab::model::MetricSink {
 public:
  void Write(const scalelab::model::Metric& metric) override {
    WriteLine(scalelab::model::FormatMetricJson(metric));
  }
  void WriteArtifact(const scalelab::model::ArtifactRecord& artifact) override {
    WriteLine(scalelab::model::FormatArtifactJson(artifact));
  }
  void WriteRecord(const scalelab::v1::RunRecord& record) override {
    WriteLine(scalelab::model::FormatRecordJson(record));
  }
  void WriteEval(const scalelab::v1::EvalResult& eval) override {
    WriteLine(scalelab::model::FormatEvalJson(eval));
  }

 private:
  static void WriteLine(std::string line) {
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
};

int Fail(const absl::Status& status) {
  std::cerr << "scalelab-train: " << status.message() << std::endl;
  return scalelab::runspec::ExitCodeForStatus(status);
}

// The --generate mode: one line per sample on stdout, the throughput on stderr.
int GenerateMain(const Args& args, const scalelab::v1::RunSpec& spec) {
  double seconds = 0;
  absl::StatusOr<std::vector<scalelab::model::Generation>> samples =
      scalelab::model::GenerateFromWeights(spec, args.weights_path, args.prompt, args.samples,
                                           args.generate_options, &seconds);
  if (!samples.ok()) return Fail(samples.status());
  std::vector<int64_t> prompt_tokens;
  for (unsigned char byte : args.prompt) prompt_tokens.push_back(byte);
  const std::string prompt_text = scalelab::model::EscapeTokens(prompt_tokens);
  int64_t generated = 0;
  std::string reasons;
  for (const scalelab::model::Generation& sample : *samples) {
    std::cout << prompt_text << scalelab::model::EscapeTokens(sample.tokens) << "\n";
    generated += static_cast<int64_t>(sample.tokens.size());
    absl::StrAppend(&reasons, reasons.empty() ? "" : ",",
                    scalelab::model::FinishReasonName(sample.finish_reason));
  }
  std::cout << std::flush;
  // Generated tokens over the time in Generate (prompt processing included, model build and
  // weight load not).
  std::cerr << absl::StrFormat(
                   "scalelab-train: generated %d tokens in %d samples in %.3f s (%.1f tokens/s); "
                   "finish: %s",
                   generated, samples->size(), seconds,
                   seconds > 0 ? static_cast<double>(generated) / seconds : 0.0, reasons)
            << std::endl;
  return scalelab::runspec::kExitOk;
}

int Main(int argc, char** argv) {
  absl::StatusOr<Args> args = ParseArgs(argc, argv);
  if (!args.ok()) return Fail(args.status());
  if (args->help) {
    std::cout << kUsage;
    return scalelab::runspec::kExitOk;
  }
  absl::StatusOr<scalelab::v1::RunSpec> spec =
      scalelab::model::LoadRunSpec(args->spec_path, args->overrides);
  if (!spec.ok()) return Fail(spec.status());
  if (args->generate) return GenerateMain(*args, *spec);
  // Preemption: SIGTERM lets the loop finish its step and checkpoint (exit 7) instead of dying.
  if (scalelab::model::LoopHonoursPreemption(spec->kind())) {
    scalelab::model::InstallPreemptionHandler();
  }
  StdoutJsonSink sink;
  absl::StatusOr<scalelab::model::TrainSummary> summary =
      scalelab::model::Train(*spec, sink, &std::cerr);
  if (!summary.ok()) {
    // The trainer's verdict (CUDA/NCCL error, out of memory, a bug) as its last stdout line; the
    // worker classifies the attempt by it first (runspec::ClassifyFailure).
    std::cout << scalelab::runspec::FormatFailureRecord(summary.status()) << std::endl;
    return Fail(summary.status());
  }
  return scalelab::runspec::kExitOk;
}

// What one child of the fork server runs: everything main() does after the exec.
int GuardedMain(int argc, char** argv) {
  // Train() already turns its exceptions into statuses; this guards spec reading.
  try {
    return Main(argc, argv);
  } catch (const std::exception& error) {
    return Fail(absl::InternalError(error.what()));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP threads spinning between parallel regions starve OpenBLAS's pool: passive waiting made
  // training 1.5-3x faster on 2 cores (bench/README.md). libgomp reads the setting once, when it
  // loads (before main), so a trainer started without it (by hand; the worker sets it) starts
  // itself again with it. An explicit OMP_WAIT_POLICY is respected; a failed exec runs as is.
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/1);
    ::execv("/proc/self/exe", argv);
  }
  if (argc == 2 && absl::StartsWith(argv[1], "--serve=")) {
    return scalelab::model::ServeForkRequests(argv[1] + std::strlen("--serve="), &GuardedMain);
  }
  return GuardedMain(argc, argv);
}
