// The gRPC calls several `scalelab` commands share, and the one way they report a failed call.
// Not thread-safe: they use the CliContext of the one command that is running.
#ifndef SCALELAB_SERVICES_CLI_CALLS_H_
#define SCALELAB_SERVICES_CLI_CALLS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "services/cli/commands.h"

namespace scalelab::cli {

// Prints "scalelab: WHAT: ..." to cli.err for a failed call: a hint to start the scheduler or
// set --addr when it is unreachable, the status code when the message is empty. Returns 1.
int Fail(const CliContext& cli, const char* what, const grpc::Status& status);

// The runs of a ListRuns filter: its first page, or every page when `all_runs`.
struct RunListing {
  std::vector<v1::Run> runs;
  int64_t total_count = 0;
  std::string next_page_token;  // "" = nothing left out
};
grpc::Status FetchRuns(CliContext& cli, v1::ListRunsRequest request, bool all_runs,
                       RunListing* listing);

// One GetSweepCurves call: every run's curve of `metric` ("" = val_loss), at most `max_points`
// points per run (0 = all).
grpc::Status FetchCurves(CliContext& cli, int64_t sweep_id, const std::string& metric,
                         int32_t max_points, v1::GetSweepCurvesResponse* curves);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_CALLS_H_
