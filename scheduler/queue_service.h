// QueueService: `scalelab queue`, what waits and why. Each call is a dry run of the next
// admission pass over a fresh snapshot (scheduler/placement.h): it decides and writes nothing.
#ifndef SCALELAB_SCHEDULER_QUEUE_SERVICE_H_
#define SCALELAB_SCHEDULER_QUEUE_SERVICE_H_

#include "scalelab/v1/queue.grpc.pb.h"
#include "scheduler/placement.h"
#include "scheduler/service_context.h"

namespace scalelab::scheduler {

// The answer for one snapshot and the round Place made over it, pure: runs in class order
// (critical first), each class in consideration order (its position), filtered by `project`
// ("" = all), at most `limit` (<= 0: 1000). Exposed for tests.
v1::ListQueueResponse DescribeQueue(const ClusterSnapshot& snapshot, const PlacementResult& round,
                                    const std::string& project, int limit);

// Thread-safe.
class QueueServiceImpl final : public v1::QueueService::Service {
 public:
  explicit QueueServiceImpl(ServiceContext context) : ctx_(context) {}

  grpc::Status ListQueue(grpc::ServerContext* context, const v1::ListQueueRequest* request,
                         v1::ListQueueResponse* response) override;

 private:
  ServiceContext ctx_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_QUEUE_SERVICE_H_
