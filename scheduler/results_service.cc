#include "scheduler/results_service.h"

#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/fitting.h"
#include "scheduler/reports.h"
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
  auto curves =
      ctx_.store->GetSweepCurves(request->sweep_id(), request->metric(), request->max_points());
  if (!curves.ok()) return ToGrpcStatus(curves.status());
  for (v1::RunCurve& curve : *curves) *response->add_curves() = std::move(curve);
  return grpc::Status::OK;
}

grpc::Status ResultsServiceImpl::GetFits(grpc::ServerContext*, const v1::GetFitsRequest* request,
                                         v1::GetFitsResponse* response) {
  RpcTimer timer(ctx_.metrics, "GetFits");
  std::vector<double> budgets(request->budgets_flops().begin(), request->budgets_flops().end());
  for (double budget : budgets) {
    if (!std::isfinite(budget) || budget <= 0 || budget > 1e35) {
      return ToGrpcStatus(absl::InvalidArgumentError(
          absl::StrCat("budgets_flops: expected finite FLOP counts in (0, 1e35], got ", budget)));
    }
  }
  if (budgets.size() > 100) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("budgets_flops: expected at most 100 budgets, got ", budgets.size())));
  }
  for (double value : {request->compare_n_params(), request->compare_target_loss()}) {
    if (!std::isfinite(value) || value < 0) {
      return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
          "compare_n_params and compare_target_loss: expected 0 (default) or a positive "
          "number, got ",
          value)));
    }
  }
  if (budgets.empty()) budgets = DefaultBudgets();
  auto fits = ctx_.store->ListFits(request->sweep_id());
  if (!fits.ok()) return ToGrpcStatus(fits.status());
  for (const services::StoredFit& fit : *fits) *response->add_fits() = ToFitProto(fit, budgets);
  if (fits->size() >= 2) {
    std::map<int64_t, v1::RunRecord> records;
    auto runs = ctx_.store->ListRuns(request->sweep_id(), v1::RUN_STATE_SUCCEEDED, 0);
    if (!runs.ok()) return ToGrpcStatus(runs.status());
    for (const v1::Run& run : *runs) records[run.id()] = run.record();
    for (v1::EfficiencyComparison& comparison : CompareGroups(
             *fits, request->compare_n_params(), request->compare_target_loss(), records)) {
      *response->add_comparisons() = std::move(comparison);
    }
  }
  return grpc::Status::OK;
}

grpc::Status ResultsServiceImpl::GetCarbonReport(grpc::ServerContext*,
                                                 const v1::GetCarbonReportRequest* request,
                                                 v1::CarbonReport* response) {
  RpcTimer timer(ctx_.metrics, "GetCarbonReport");
  analysis::CarbonAssumptions assumptions = ctx_.carbon;
  if (request->pue() != 0) assumptions.pue = request->pue();
  if (request->grid_g_per_kwh() != 0) assumptions.grid_g_per_kwh = request->grid_g_per_kwh();
  if (absl::Status status = assumptions.Validate(); !status.ok()) {
    return ToGrpcStatus(status);
  }
  std::vector<v1::Run> runs;
  std::string token;
  do {
    auto page = ctx_.store->ListRunsPage(request->sweep_id(), v1::RUN_STATE_UNSPECIFIED, 0, token);
    if (!page.ok()) return ToGrpcStatus(page.status());
    for (v1::Run& run : page->runs) runs.push_back(std::move(run));
    token = page->next_page_token;
  } while (!token.empty());
  *response = BuildCarbonReport(request->sweep_id(), runs, assumptions);
  return grpc::Status::OK;
}

grpc::Status ResultsServiceImpl::GetReliabilityReport(
    grpc::ServerContext*, const v1::GetReliabilityReportRequest* request,
    v1::ReliabilityReport* response) {
  RpcTimer timer(ctx_.metrics, "GetReliabilityReport");
  auto attempts = ctx_.store->ListAttempts(request->sweep_id());
  if (!attempts.ok()) return ToGrpcStatus(attempts.status());
  auto report = BuildReliabilityReport(*attempts, ctx_.reliability);
  if (!report.ok()) return ToGrpcStatus(report.status());
  *response = *std::move(report);
  return grpc::Status::OK;
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

grpc::Status ResultsServiceImpl::GetEvals(grpc::ServerContext*, const v1::GetEvalsRequest* request,
                                          v1::GetEvalsResponse* response) {
  RpcTimer timer(ctx_.metrics, "GetEvals");
  auto evals = ctx_.store->GetEvals(*request);
  if (!evals.ok()) return ToGrpcStatus(evals.status());
  for (v1::EvalResult& eval : *evals) *response->add_evals() = std::move(eval);
  return grpc::Status::OK;
}

}  // namespace scalelab::scheduler
