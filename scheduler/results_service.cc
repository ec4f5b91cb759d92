#include "scheduler/results_service.h"

#include <string>
#include <vector>

#include "services/status_util.h"

namespace scalelab::scheduler {

using services::ToGrpcStatus;

grpc::Status ResultsServiceImpl::GetRunMetrics(grpc::ServerContext*,
                                               const v1::GetRunMetricsRequest* request,
                                               v1::GetRunMetricsResponse* response) {
  RpcTimer timer(ctx_.metrics, "GetRunMetrics");
  std::vector<std::string> names(request->names().begin(), request->names().end());
  auto metrics = ctx_.store->GetRunMetrics(request->run_id(), names);
  if (!metrics.ok()) return ToGrpcStatus(metrics.status());
  *response = *std::move(metrics);
  return grpc::Status::OK;
}

grpc::Status ResultsServiceImpl::GetSweepCurves(grpc::ServerContext*,
                                                const v1::GetSweepCurvesRequest* request,
                                                v1::GetSweepCurvesResponse* response) {
  RpcTimer timer(ctx_.metrics, "GetSweepCurves");
  auto curves = ctx_.store->GetSweepCurves(request->sweep_id(), request->metric());
  if (!curves.ok()) return ToGrpcStatus(curves.status());
  for (v1::RunCurve& curve : *curves) *response->add_curves() = std::move(curve);
  return grpc::Status::OK;
}

grpc::Status ResultsServiceImpl::GetFits(grpc::ServerContext*, const v1::GetFitsRequest*,
                                         v1::GetFitsResponse*) {
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                      "scaling-law fits are not built yet: use GetSweepCurves for the raw curves");
}

}  // namespace scalelab::scheduler
