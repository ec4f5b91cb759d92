// ClusterService (proto/scalelab/v1/cluster.proto): what a launcher sizes its worker pool by.
// A thin adapter over the store's placement snapshot; SummarizeCluster is the pure part.
#ifndef SCALELAB_SCHEDULER_CLUSTER_SERVICE_H_
#define SCALELAB_SCHEDULER_CLUSTER_SERVICE_H_

#include <string>

#include "scalelab/v1/cluster.grpc.pb.h"
#include "scheduler/service_context.h"
#include "services/store/placement_snapshot.h"

namespace scalelab::scheduler {

// Pending demand and the ALIVE workers whose name starts with `name_prefix` ("" = all).
// pending_gpus counts gpus per rank x ranks (ranks 0 counts as 1).
v1::ClusterSummary SummarizeCluster(const services::PlacementSnapshot& snapshot,
                                    const std::string& name_prefix);

class ClusterServiceImpl final : public v1::ClusterService::Service {
 public:
  explicit ClusterServiceImpl(ServiceContext context) : context_(context) {}

  grpc::Status GetClusterSummary(grpc::ServerContext* context,
                                 const v1::GetClusterSummaryRequest* request,
                                 v1::ClusterSummary* response) override;

 private:
  ServiceContext context_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_CLUSTER_SERVICE_H_
