// SweepService: a thin adapter from gRPC to manifest parsing, expansion and the store.
#ifndef SCALELAB_SCHEDULER_SWEEP_SERVICE_H_
#define SCALELAB_SCHEDULER_SWEEP_SERVICE_H_

#include <cstddef>
#include <memory>

#include "scalelab/v1/sweep.grpc.pb.h"
#include "scheduler/service_context.h"
#include "scheduler/sweep_watch.h"

namespace scalelab::scheduler {

// SubmitSweep refuses manifest_yaml larger than this with INVALID_ARGUMENT, before parsing.
inline constexpr size_t kMaxManifestBytes = size_t{1} << 20;

// Thread-safe: unary handlers run on gRPC's thread pool and share only the context. WatchSweep
// is a callback method (scheduler/sweep_watch.h): a watch holds no thread while it waits. The
// service must outlive the gRPC server it is registered with; call StopWatches() before the
// server's Shutdown so that watches end at once.
class SweepServiceImpl final
    : public v1::SweepService::WithCallbackMethod_WatchSweep<v1::SweepService::Service> {
 public:
  explicit SweepServiceImpl(ServiceContext context);

  grpc::Status SubmitSweep(grpc::ServerContext* context, const v1::SubmitSweepRequest* request,
                           v1::SubmitSweepResponse* response) override;
  grpc::Status GetSweep(grpc::ServerContext* context, const v1::GetSweepRequest* request,
                        v1::Sweep* response) override;
  grpc::Status ListSweeps(grpc::ServerContext* context, const v1::ListSweepsRequest* request,
                          v1::ListSweepsResponse* response) override;
  grpc::Status ListRuns(grpc::ServerContext* context, const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override;
  grpc::Status CancelSweep(grpc::ServerContext* context, const v1::CancelSweepRequest* request,
                           v1::Sweep* response) override;
  grpc::Status GetSearchTree(grpc::ServerContext* context, const v1::GetSearchTreeRequest* request,
                             v1::GetSearchTreeResponse* response) override;
  grpc::ServerWriteReactor<v1::SweepEvent>* WatchSweep(
      grpc::CallbackServerContext* context, const v1::WatchSweepRequest* request) override;

  // Ends every watch (CANCELLED) and makes new ones end at once. Idempotent.
  void StopWatches() { watches_->Stop(); }
  // Watches alive now.
  int active_watches() const { return watches_->active(); }

 private:
  ServiceContext ctx_;
  std::unique_ptr<WatchHub> watches_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SWEEP_SERVICE_H_
