// The `scalelab` command-line client: one function per subcommand over the gRPC API.
// Each writes its result to cli.out and its errors to cli.err, and returns the process exit
// code (0 ok, 1 the call failed, 2 usage or input). What is printed is built by format.h.
#ifndef SCALELAB_SERVICES_CLI_COMMANDS_H_
#define SCALELAB_SERVICES_CLI_COMMANDS_H_

#include <cstdint>
#include <iostream>
#include <memory>
#include <string>

#include "scalelab/v1/queue.grpc.pb.h"
#include "scalelab/v1/results.grpc.pb.h"
#include "scalelab/v1/sweep.grpc.pb.h"

namespace scalelab::cli {

enum class OutputFormat { kTable, kJson };

// Not thread-safe: one command at a time.
struct CliContext {
  std::unique_ptr<v1::SweepService::Stub> sweeps;
  std::unique_ptr<v1::ResultsService::Stub> results;
  std::unique_ptr<v1::QueueService::Stub> queue;
  OutputFormat output = OutputFormat::kTable;
  std::string address;  // for error messages
  // Not owned; must outlive the commands. Tests pass string streams.
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
  // watch redraws its frame in place only on a terminal. Connect sets it from isatty(stdout).
  bool out_is_terminal = false;
};

// Stubs over an insecure channel to `address` (host:port), printing to stdout and stderr.
CliContext Connect(const std::string& address, OutputFormat output);

// The pending runs, in class order, with their position, reason and message (project "" = all).
int Queue(CliContext& cli, const std::string& project);

// Refuses a manifest that is not UTF-8 (naming the file and the byte offset) before sending.
int Submit(CliContext& cli, const std::string& manifest_path, const std::string& idempotency_key);
// sweep_id 0 = every sweep. Else the sweep and its first 1000 runs, with a line saying how many
// more there are; all_runs pages through every run.
int Status(CliContext& cli, int64_t sweep_id, bool all_runs = false);
// sweep_id 0 = runs of every sweep; state "" = any. Paged like Status.
int Runs(CliContext& cli, int64_t sweep_id, const std::string& state, bool all_runs = false);
int Watch(CliContext& cli, int64_t sweep_id);
// format: csv or json; names: comma-separated metric names, "" = all.
int Metrics(CliContext& cli, int64_t run_id, const std::string& format, const std::string& names);
// A run's artifacts (checkpoints, final weights) with size, SHA-256 and location.
int Artifacts(CliContext& cli, int64_t run_id);
int Cancel(CliContext& cli, int64_t sweep_id, const std::string& reason);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_COMMANDS_H_
