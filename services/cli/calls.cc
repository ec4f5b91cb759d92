#include "services/cli/calls.h"

#include <algorithm>
#include <ostream>

#include "absl/status/status.h"

namespace scalelab::cli {

int Fail(const CliContext& cli, const char* what, const grpc::Status& status) {
  std::ostream& err = *cli.err;
  err << "scalelab: " << what << ": ";
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    err << "cannot reach the scheduler at " << cli.address << " (" << status.error_message()
        << "); start it or set --addr / SCALELAB_ADDR\n";
  } else if (status.error_message().empty()) {
    // Never leave the user with "scalelab: submit: " and nothing after it.
    err << absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))
        << " (the call failed without a message)\n";
  } else {
    err << status.error_message() << "\n";
  }
  return 1;
}

grpc::Status FetchRuns(CliContext& cli, v1::ListRunsRequest request, bool all_runs,
                       RunListing* listing) {
  while (true) {
    v1::ListRunsResponse page;
    grpc::ClientContext context;
    grpc::Status status = cli.sweeps->ListRuns(&context, request, &page);
    if (!status.ok()) return status;
    listing->runs.insert(listing->runs.end(), page.runs().begin(), page.runs().end());
    listing->total_count = std::max<int64_t>(page.total_count(), listing->runs.size());
    listing->next_page_token = page.next_page_token();
    // An empty page with a token would loop forever; a scheduler never sends one.
    if (!all_runs || page.next_page_token().empty() || page.runs().empty()) {
      return grpc::Status::OK;
    }
    request.set_page_token(page.next_page_token());
  }
}

grpc::Status FetchCurves(CliContext& cli, int64_t sweep_id, const std::string& metric,
                         int32_t max_points, v1::GetSweepCurvesResponse* curves) {
  v1::GetSweepCurvesRequest request;
  request.set_sweep_id(sweep_id);
  request.set_metric(metric);
  request.set_max_points(max_points);
  grpc::ClientContext context;
  return cli.results->GetSweepCurves(&context, request, curves);
}

}  // namespace scalelab::cli
