#include "scheduler/worker_service.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/admission.h"
#include "scheduler/leasing.h"
#include "scheduler/retry_policy.h"
#include "services/api/status_util.h"
#include "services/common/run_state.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {

using services::ToGrpcStatus;

absl::Status WorkerServiceImpl::CountFenced(const char* method, absl::Status status) {
  // The store's fencing refusal; other FailedPreconditions (an attempt that is not current by
  // number) are not counted.
  if (absl::IsFailedPrecondition(status) &&
      absl::StrContains(status.message(), "is not the current lease of run")) {
    ctx_.metrics->fenced_reports.Add({{"method", method}}).Increment();
    spdlog::warn("{} fenced: {}", method, std::string(status.message()));
  }
  return status;
}

namespace {
// How long LeaseRuns waits for an admission pass when nothing is admitted to the worker.
constexpr absl::Duration kLeaseWaitForPass = absl::Milliseconds(250);
}  // namespace

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext*, const v1::RegisterRequest* request,
                                         v1::RegisterResponse* response) {
  RpcTimer timer(ctx_.metrics, "Register");
  if (request->cpu_slots() < 0 || (request->cpu_slots() == 0 && request->gpus_size() == 0)) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "cpu_slots: expected >= 1 when the worker has no GPUs, got ", request->cpu_slots())));
  }
  auto worker_id = ctx_.store->RegisterWorker(*request);
  if (!worker_id.ok()) return ToGrpcStatus(worker_id.status());
  spdlog::info("worker registered id={} name={} cpu_slots={} gpus={}", *worker_id, request->name(),
               request->cpu_slots(), request->gpus_size());
  response->set_worker_id(*worker_id);
  response->set_heartbeat_interval_s(absl::ToDoubleSeconds(ctx_.heartbeat_interval));
  response->set_lease_ttl_s(absl::ToDoubleSeconds(ctx_.lease_ttl));
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                                          v1::HeartbeatResponse* response) {
  RpcTimer timer(ctx_.metrics, "Heartbeat");
  std::vector<v1::RunAttempt> running(request->running().begin(), request->running().end());
  std::vector<v1::HealthCheck> health(request->health().begin(), request->health().end());
  auto result = ctx_.store->Heartbeat(request->worker_id(), running, ctx_.clock->Now(),
                                      ctx_.lease_ttl, health);
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const std::string& fenced : result->fenced) {
    ctx_.metrics->fenced_reports.Add({{"method", "Heartbeat"}}).Increment();
    spdlog::warn("heartbeat of worker {} fenced: {}", request->worker_id(), fenced);
  }
  response->set_reregister(!result->known);
  for (const v1::RunAttempt& stop : result->stop) *response->add_stop() = stop;
  // Preemption hook: victims to checkpoint and stop, re-sent until their attempts end.
  for (const v1::RunAttempt& preempt : result->preempt) *response->add_preempt() = preempt;
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::LeaseRuns(grpc::ServerContext*, const v1::LeaseRunsRequest* request,
                                          v1::LeaseRunsResponse* response) {
  RpcTimer timer(ctx_.metrics, "LeaseRuns");
  absl::StatusOr<std::vector<v1::Lease>> leases;
  if (ctx_.admitter == nullptr) {
    leases =
        GrantLeases(*ctx_.placement, *ctx_.store, request->worker_id(), request->free_slots(),
                    ctx_.clock->Now(), ctx_.lease_ttl, ctx_.placement_options, ctx_.rendezvous);
  } else {
    // No planning here: the cycle admitted runs to this worker, this call hands them out.
    leases = ctx_.store->LeaseAdmitted(request->worker_id(), request->free_slots(),
                                       ctx_.clock->Now(), ctx_.lease_ttl, ctx_.rendezvous);
    if (leases.ok() && leases->empty() && request->free_slots() > 0) {
      // Nothing admitted yet: ask for a pass and give it a moment, so a fresh sweep starts on
      // this poll rather than the next. Bounded, so idle workers never hold a thread long.
      if (ctx_.admitter->WaitForPass(kLeaseWaitForPass)) {
        leases = ctx_.store->LeaseAdmitted(request->worker_id(), request->free_slots(),
                                           ctx_.clock->Now(), ctx_.lease_ttl, ctx_.rendezvous);
      }
    }
  }
  if (!leases.ok()) return ToGrpcStatus(leases.status());
  for (v1::Lease& lease : *leases) {
    const v1::ExecutionSpec& execution = lease.spec().execution();
    spdlog::info("run leased run={} attempt={} worker={} gpus=[{}]{}", lease.spec().run_id(),
                 lease.spec().attempt(), request->worker_id(),
                 absl::StrJoin(execution.gpu_indices(), ","),
                 execution.world_size() > 1
                     ? absl::StrCat(" rank=", execution.rank(), "/", execution.world_size(),
                                    " rendezvous=", execution.rendezvous())
                     : "");
    ctx_.metrics->leases_granted.Increment();
    *response->add_leases() = std::move(lease);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportMetrics(grpc::ServerContext*,
                                              const v1::ReportMetricsRequest* request,
                                              v1::ReportMetricsResponse* response) {
  RpcTimer timer(ctx_.metrics, "ReportMetrics");
  auto result = ctx_.store->ReportMetrics(*request, ctx_.clock->Now(), ctx_.lease_ttl);
  if (!result.ok()) return ToGrpcStatus(CountFenced("ReportMetrics", result.status()));
  ctx_.metrics->metric_points.Increment(result->stored);
  ctx_.metrics->tokens_trained.Increment(result->tokens_added);
  response->set_stored(result->stored);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::CompleteRun(grpc::ServerContext*,
                                            const v1::CompleteRunRequest* request,
                                            v1::CompleteRunResponse* response) {
  RpcTimer timer(ctx_.metrics, "CompleteRun");
  const RetryOptions& retry = ctx_.retry;
  auto state =
      ctx_.store->CompleteRun(*request, [&retry](const v1::Run& run, v1::FailureClass failure_class,
                                                 const services::RetryCounts& counts) {
        return DecideAfterFailure(run, failure_class, counts, retry);
      });
  if (!state.ok()) return ToGrpcStatus(CountFenced("CompleteRun", state.status()));

  if (ctx_.admitter != nullptr) ctx_.admitter->Wake();  // resources were freed
  std::string state_name = services::RunStateName(*state);
  response->set_state(*state);
  if (request->rank() > 0 && request->succeeded()) {
    // A gang's rank > 0 that ended well: rank 0 reports the run's outcome.
    spdlog::info("rank finished run={} attempt={} rank={} run state={}", request->run_id(),
                 request->attempt(), request->rank(), state_name);
    return grpc::Status::OK;
  }
  ctx_.metrics->runs_finished.Add({{"state", state_name}}).Increment();
  if (request->succeeded()) {
    spdlog::info("run finished run={} attempt={} state={}", request->run_id(), request->attempt(),
                 state_name);
  } else {
    spdlog::warn(
        "run attempt failed run={} attempt={} rank={} exit_code={} signal={} class={} next={}: {}",
        request->run_id(), request->attempt(), request->rank(), request->exit_code(),
        request->term_signal(), services::FailureClassName(request->failure_class()), state_name,
        request->message());
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportArtifacts(grpc::ServerContext*,
                                                const v1::ReportArtifactsRequest* request,
                                                v1::ReportArtifactsResponse* response) {
  RpcTimer timer(ctx_.metrics, "ReportArtifacts");
  auto stored = ctx_.store->ReportArtifacts(*request);
  if (!stored.ok()) return ToGrpcStatus(CountFenced("ReportArtifacts", stored.status()));
  for (v1::Artifact& artifact : *stored) {
    spdlog::info("artifact stored run={} attempt={} kind={} step={} bytes={} at {}",
                 artifact.run_id(), artifact.attempt(), artifact.kind(), artifact.step(),
                 artifact.size_bytes(), artifact.location());
    *response->add_artifacts() = std::move(artifact);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ReportEvals(grpc::ServerContext*,
                                            const v1::ReportEvalsRequest* request,
                                            v1::ReportEvalsResponse* response) {
  RpcTimer timer(ctx_.metrics, "ReportEvals");
  auto stored = ctx_.store->ReportEvals(*request);
  if (!stored.ok()) {
    if (absl::IsInvalidArgument(stored.status())) {
      spdlog::warn("evaluation results refused run={} attempt={} worker={}: {}", request->run_id(),
                   request->attempt(), request->worker_id(),
                   std::string(stored.status().message()));
    }
    return ToGrpcStatus(CountFenced("ReportEvals", stored.status()));
  }
  ctx_.metrics->evals.Increment(*stored);
  response->set_stored(*stored);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Drain(grpc::ServerContext*, const v1::DrainRequest* request,
                                      v1::DrainResponse* response) {
  RpcTimer timer(ctx_.metrics, "Drain");
  auto requeued = ctx_.store->DrainWorker(request->worker_id(), request->reason());
  if (!requeued.ok()) return ToGrpcStatus(requeued.status());
  // The requeued runs go elsewhere on the next pass, not after the admission timeout.
  if (*requeued > 0 && ctx_.admitter != nullptr) ctx_.admitter->Wake();
  spdlog::info("worker draining id={} reason={} requeued={}", request->worker_id(),
               request->reason(), *requeued);
  response->set_requeued(*requeued);
  return grpc::Status::OK;
}

}  // namespace scalelab::scheduler
