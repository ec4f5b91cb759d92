// scalelab-train: runs one attempt of a run from its RunSpec file and prints its metrics,
// artifacts and run record to stdout as JSON lines (model/metrics.h); two log lines and any
// error go to stderr.
//
//   scalelab-train --spec=FILE [--set=key=value]... [--device=cpu|cuda] [--threads=N]
//
// The worker passes --spec only. The overrides are for running by hand: --set takes a dotted
// RunConfig key (runspec/keys.h) and may be repeated. Exit codes: runspec/exit_codes.h
// (0 ok, 1 error, 2 invalid spec or flag, 3 data, 4 divergence, 5 out of memory).
//
// This file only reads argv; model/spec_loader.h prepares the spec, model/trainer.h trains it.

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
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
    "Metrics go to stdout as JSON lines; exit codes: 0 ok, 1 error, 2 invalid spec or flag,\n"
    "3 data error, 4 divergence, 5 out of memory.\n";

struct Args {
  std::string spec_path;
  scalelab::model::SpecOverrides overrides;
  bool help = false;
};

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
    if (!absl::ConsumePrefix(&arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\"; expected --flag=value"));
    }
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    std::string value;
    if (eq != absl::string_view::npos) {
      value = std::string(arg.substr(eq + 1));
    } else if (name == "spec" || name == "set" || name == "device" || name == "threads") {
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
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag --", name, "; expected --spec, --set, --device or --threads (see --help)"));
    }
  }
  if (!args.help && args.spec_path.empty()) {
    return absl::InvalidArgumentError("--spec: required; expected --spec=FILE (a RunSpec)");
  }
  return args;
}

// One JSON line per metric, artifact or run record, flushed at once so the worker sees progress as
// it happens.
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
  StdoutJsonSink sink;
  absl::StatusOr<scalelab::model::TrainSummary> summary =
      scalelab::model::Train(*spec, sink, &std::cerr);
  if (!summary.ok()) return Fail(summary.status());
  return scalelab::runspec::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // Train() already turns its exceptions into statuses; this guards spec reading.
  try {
    return Main(argc, argv);
  } catch (const std::exception& error) {
    return Fail(absl::InternalError(error.what()));
  }
}
