#include "scheduler/results_service.h"

#include <string>
#include <vector>

#include "services/api/status_util.h"

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

grpc::Status ResultsServiceImpl::ListArtifacts(grpc::ServerContext*,
                                               const v1::ListArtifactsRequest* request,
                                               v1::ListArtifactsResponse* response) {
  RpcTimer timer(ctx_.metrics, "ListArtifacts");
  auto artifacts = ctx_.store->ListArtifacts(request->run_id());
  if (!artifacts.ok()) return ToGrpcStatus(artifacts.status());
  for (v1::Artifact& artifact : *artifacts) *response->add_artifacts() = std::move(artifact);
  return grpc::Status::OK;
}

}  // namespace scalelab::scheduler
