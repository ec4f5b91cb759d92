// The `scalelab` command-line client: one function per subcommand over the gRPC API.
// Each prints to stdout and returns the process exit code (0 ok, 1 the call failed, 2 usage).
#ifndef SCALELAB_SERVICES_CLI_COMMANDS_H_
#define SCALELAB_SERVICES_CLI_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "scalelab/v1/results.grpc.pb.h"
#include "scalelab/v1/sweep.grpc.pb.h"

namespace scalelab::cli {

enum class OutputFormat { kTable, kJson };

struct CliContext {
  std::unique_ptr<v1::SweepService::Stub> sweeps;
  std::unique_ptr<v1::ResultsService::Stub> results;
  OutputFormat output = OutputFormat::kTable;
  std::string address;  // for error messages
};

CliContext Connect(const std::string& address, OutputFormat output);

int Submit(CliContext& cli, const std::string& manifest_path, const std::string& idempotency_key);
int Status(CliContext& cli, int64_t sweep_id);  // 0 = every sweep
int Runs(CliContext& cli, int64_t sweep_id, const std::string& state);
int Watch(CliContext& cli, int64_t sweep_id);
int Metrics(CliContext& cli, int64_t run_id, const std::string& format, const std::string& names);
int Cancel(CliContext& cli, int64_t sweep_id, const std::string& reason);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_COMMANDS_H_
