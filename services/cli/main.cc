// scalelab: the command-line client. Flags only here; each subcommand lives in commands.cc.
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "services/cli/commands.h"
#include "services/cli/data_prep.h"

ABSL_FLAG(std::string, addr, "",
          "scheduler address host:port (default: $SCALELAB_ADDR, else 127.0.0.1:7070)");
ABSL_FLAG(std::string, output, "table", "table or json");
ABSL_FLAG(std::string, idempotency_key, "",
          "submit: repeat-safe key; the same key returns the same sweep");
ABSL_FLAG(std::string, format, "csv", "metrics: csv or json");
ABSL_FLAG(std::string, names, "", "metrics: comma-separated metric names (default all)");
ABSL_FLAG(std::string, state, "", "runs: only runs in this state");
ABSL_FLAG(int64_t, sweep, 0, "runs: only runs of this sweep");
ABSL_FLAG(bool, all, false, "status, runs: list every run, not only the first 1000");
ABSL_FLAG(std::string, reason, "", "cancel: why, stored with the runs");
ABSL_FLAG(std::string, input, "", "data: text or gzip corpus");
ABSL_FLAG(std::string, data_output, "", "data: output folder for train.bin, val.bin, meta.json");
ABSL_FLAG(int64_t, skip_bytes, 0, "data: bytes to drop from the start of the corpus");
ABSL_FLAG(int64_t, max_bytes, 8000000, "data: bytes to keep (0 = all)");
ABSL_FLAG(double, val_fraction, 0.05, "data: held-out fraction at the end");

namespace {

constexpr char kUsage[] = R"(ScaleLab command-line client.

usage: scalelab [flags] COMMAND [ARGS]
  submit FILE         submit a sweep manifest (--idempotency_key)
  status [SWEEP]      sweeps, or one sweep's runs with state, step and loss (--all)
  watch SWEEP         live progress until the sweep ends
  runs                runs (--sweep, --state, --all)
  metrics RUN         a run's metric points (--format csv|json, --names)
  artifacts RUN       a run's checkpoints and final weights: step, size, sha256, location
  cancel SWEEP        cancel every unfinished run of a sweep (--reason)
  data                text corpus -> byte token shards (--input, --data_output)
common flags: --addr (or SCALELAB_ADDR), --output table|json)";

int Usage(const std::string& problem) {
  std::cerr << "scalelab: " << problem << "\n\n" << kUsage << "\n";
  return 2;
}

bool ParseId(const std::vector<char*>& args, size_t index, const char* what, int64_t* id) {
  if (args.size() <= index) return false;
  if (!absl::SimpleAtoi(args[index], id) || *id <= 0) {
    std::cerr << "scalelab: " << what << ": expected a positive id, got \"" << args[index]
              << "\"\n";
    *id = -1;
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 2) return Usage("expected a command");
  const std::string command = args[1];

  if (command == "data") {
    scalelab::cli::DataPrepOptions options;
    options.input = absl::GetFlag(FLAGS_input);
    options.output = absl::GetFlag(FLAGS_data_output);
    options.skip_bytes = absl::GetFlag(FLAGS_skip_bytes);
    options.max_bytes = absl::GetFlag(FLAGS_max_bytes);
    options.val_fraction = absl::GetFlag(FLAGS_val_fraction);
    auto result = scalelab::cli::PrepareByteShards(options);
    if (!result.ok()) {
      std::cerr << "scalelab: data: " << result.status().message() << "\n";
      return 1;
    }
    std::cout << "wrote " << options.output << ": " << result->train_tokens << " train tokens, "
              << result->val_tokens << " validation tokens, unigram entropy "
              << result->unigram_entropy_nats << " nats/token\n";
    return 0;
  }

  std::string address = absl::GetFlag(FLAGS_addr);
  if (address.empty()) {
    const char* env = std::getenv("SCALELAB_ADDR");
    address = env != nullptr && *env != '\0' ? env : "127.0.0.1:7070";
  }
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output != "table" && output != "json") {
    return Usage("--output: expected table or json, got \"" + output + "\"");
  }
  auto cli =
      scalelab::cli::Connect(address, output == "json" ? scalelab::cli::OutputFormat::kJson
                                                       : scalelab::cli::OutputFormat::kTable);
  int64_t id = 0;
  if (command == "submit") {
    if (args.size() < 3) return Usage("submit: expected a manifest file");
    return scalelab::cli::Submit(cli, args[2], absl::GetFlag(FLAGS_idempotency_key));
  }
  if (command == "status") {
    if (!ParseId(args, 2, "status", &id) && id < 0) return 2;
    return scalelab::cli::Status(cli, id, absl::GetFlag(FLAGS_all));
  }
  if (command == "runs") {
    return scalelab::cli::Runs(cli, absl::GetFlag(FLAGS_sweep), absl::GetFlag(FLAGS_state),
                               absl::GetFlag(FLAGS_all));
  }
  if (command == "watch") {
    if (!ParseId(args, 2, "watch", &id)) return id < 0 ? 2 : Usage("watch: expected a sweep id");
    return scalelab::cli::Watch(cli, id);
  }
  if (command == "metrics") {
    if (!ParseId(args, 2, "metrics", &id)) return id < 0 ? 2 : Usage("metrics: expected a run id");
    return scalelab::cli::Metrics(cli, id, absl::GetFlag(FLAGS_format), absl::GetFlag(FLAGS_names));
  }
  if (command == "artifacts") {
    if (!ParseId(args, 2, "artifacts", &id)) {
      return id < 0 ? 2 : Usage("artifacts: expected a run id");
    }
    return scalelab::cli::Artifacts(cli, id);
  }
  if (command == "cancel") {
    if (!ParseId(args, 2, "cancel", &id)) return id < 0 ? 2 : Usage("cancel: expected a sweep id");
    return scalelab::cli::Cancel(cli, id, absl::GetFlag(FLAGS_reason));
  }
  return Usage("unknown command \"" + command + "\"");
}
