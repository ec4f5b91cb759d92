// ResultsService: metric series, sweep curves, fitted laws (stored by the fitter, fitter.h) with
// allocations and comparisons computed per request, and carbon and reliability reports.
#ifndef SCALELAB_SCHEDULER_RESULTS_SERVICE_H_
#define SCALELAB_SCHEDULER_RESULTS_SERVICE_H_

#include "scalelab/v1/results.grpc.pb.h"
#include "scheduler/service_context.h"

namespace scalelab::scheduler {

// Thread-safe.
class ResultsServiceImpl final : public v1::ResultsService::Service {
 public:
  explicit ResultsServiceImpl(ServiceContext context) : ctx_(context) {}

  grpc::Status GetRunMetrics(grpc::ServerContext* context, const v1::GetRunMetricsRequest* request,
                             v1::GetRunMetricsResponse* response) override;
  grpc::Status GetSweepCurves(grpc::ServerContext* context,
                              const v1::GetSweepCurvesRequest* request,
                              v1::GetSweepCurvesResponse* response) override;
  grpc::Status GetFits(grpc::ServerContext* context, const v1::GetFitsRequest* request,
                       v1::GetFitsResponse* response) override;
  grpc::Status GetCarbonReport(grpc::ServerContext* context,
                               const v1::GetCarbonReportRequest* request,
                               v1::CarbonReport* response) override;
  grpc::Status GetReliabilityReport(grpc::ServerContext* context,
                                    const v1::GetReliabilityReportRequest* request,
                                    v1::ReliabilityReport* response) override;
  grpc::Status ListArtifacts(grpc::ServerContext* context, const v1::ListArtifactsRequest* request,
                             v1::ListArtifactsResponse* response) override;
  grpc::Status GetEvals(grpc::ServerContext* context, const v1::GetEvalsRequest* request,
                        v1::GetEvalsResponse* response) override;

 private:
  ServiceContext ctx_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_RESULTS_SERVICE_H_
