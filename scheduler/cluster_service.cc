#include "scheduler/cluster_service.h"

#include "absl/strings/match.h"
#include "services/api/status_util.h"

namespace scalelab::scheduler {

v1::ClusterSummary SummarizeCluster(const services::PlacementSnapshot& snapshot,
                                    const std::string& name_prefix) {
  v1::ClusterSummary summary;
  summary.set_pending_runs(static_cast<int64_t>(snapshot.pending.size()));
  int64_t pending_gpus = 0;
  for (const services::StoredPendingRun& run : snapshot.pending) {
    const int64_t ranks = run.resources.ranks() > 0 ? run.resources.ranks() : 1;
    pending_gpus += static_cast<int64_t>(run.resources.gpus()) * ranks;
  }
  summary.set_pending_gpus(pending_gpus);
  int64_t active_runs = 0;
  for (const services::StoredWorker& worker : snapshot.workers) {
    active_runs += static_cast<int64_t>(worker.held.size());
    if (!absl::StartsWith(worker.inventory.name(), name_prefix)) continue;
    v1::WorkerSummary* out = summary.add_workers();
    out->set_worker_id(worker.worker_id);
    out->set_name(worker.inventory.name());
    out->set_hostname(worker.inventory.hostname());
    out->set_cpu_slots(worker.inventory.cpu_slots());
    out->set_gpus(worker.inventory.gpus_size());
    out->set_active_runs(static_cast<int32_t>(worker.held.size()));
  }
  summary.set_active_runs(active_runs);
  return summary;
}

grpc::Status ClusterServiceImpl::GetClusterSummary(grpc::ServerContext* /*context*/,
                                                   const v1::GetClusterSummaryRequest* request,
                                                   v1::ClusterSummary* response) {
  RpcTimer timer(context_.metrics, "GetClusterSummary");
  auto snapshot = context_.store->ReadPlacementSnapshot();
  if (!snapshot.ok()) return services::ToGrpcStatus(snapshot.status());
  *response = SummarizeCluster(*snapshot, request->name_prefix());
  return grpc::Status::OK;
}

}  // namespace scalelab::scheduler
