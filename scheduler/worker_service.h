// WorkerService: registration, heartbeats, leases, metric ingest and completions, as a thin
// adapter over the store and the retry policy.
#ifndef SCALELAB_SCHEDULER_WORKER_SERVICE_H_
#define SCALELAB_SCHEDULER_WORKER_SERVICE_H_

#include "scalelab/v1/worker.grpc.pb.h"
#include "scheduler/service_context.h"

namespace scalelab::scheduler {

// Thread-safe.
class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(ServiceContext context) : ctx_(context) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::Status LeaseRuns(grpc::ServerContext* context, const v1::LeaseRunsRequest* request,
                         v1::LeaseRunsResponse* response) override;
  grpc::Status ReportMetrics(grpc::ServerContext* context, const v1::ReportMetricsRequest* request,
                             v1::ReportMetricsResponse* response) override;
  grpc::Status CompleteRun(grpc::ServerContext* context, const v1::CompleteRunRequest* request,
                           v1::CompleteRunResponse* response) override;
  grpc::Status ReportArtifacts(grpc::ServerContext* context,
                               const v1::ReportArtifactsRequest* request,
                               v1::ReportArtifactsResponse* response) override;
  grpc::Status ReportEvals(grpc::ServerContext* context, const v1::ReportEvalsRequest* request,
                           v1::ReportEvalsResponse* response) override;
  grpc::Status Drain(grpc::ServerContext* context, const v1::DrainRequest* request,
                     v1::DrainResponse* response) override;

 private:
  // Counts a fencing refusal (scalelab_scheduler_fenced_reports_total{method}); returns `status`.
  absl::Status CountFenced(const char* method, absl::Status status);
  ServiceContext ctx_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_WORKER_SERVICE_H_
