// Data parallelism for the training loops: one process per rank, joined through c10d (LibTorch's
// distributed library) with Gloo on the CPU and NCCL on CUDA. Rank 0 hosts the rendezvous (a c10d
// TCPStore at execution.rendezvous); every rank connects to it, then all collectives run on the
// process group. Gradients are averaged across ranks before each optimizer step, so W ranks that
// each take 1/W of the global batch compute the gradient one process would on the whole batch.
//
// Thread safety: one owner (the loop's thread). Collectives block until every rank has joined
// them; a rank that dies makes the others' next collective fail (Gloo sees the socket close), and
// that failure is thrown as DistributedError, which model/trainer.cc turns into kUnavailable
// (exit 6: the attempt failed because of its peers, not its own code).

#ifndef SCALELAB_MODEL_DIST_H_
#define SCALELAB_MODEL_DIST_H_

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace c10d {
class ProcessGroup;
}  // namespace c10d

namespace scalelab::model {

// A collective failed: a peer rank died, or it timed out. Thrown by DataParallelGroup's
// collectives; Train() catches it.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DistOptions {
  int rank = 0;
  int world_size = 1;
  std::string rendezvous;  // "host:port" of rank 0's TCPStore
  std::string backend;     // "gloo" | "nccl"; "" = nccl on CUDA, gloo on the CPU
  bool cuda = false;       // the loop trains on CUDA (the NCCL default, and NCCL's device)
  // How long to wait for every rank at the rendezvous and in each collective.
  std::chrono::milliseconds timeout = std::chrono::minutes(5);
};

// The DistOptions of a validated spec's execution (world_size 0 reads as 1).
DistOptions DistOptionsFor(const scalelab::v1::ExecutionSpec& execution, bool cuda);

// "host:port" split, port in 1..65535. InvalidArgument naming execution.rendezvous otherwise.
absl::StatusOr<std::pair<std::string, uint16_t>> ParseRendezvous(const std::string& rendezvous);

class DataParallelGroup {
 public:
  // Joins the group: rank 0 starts the TCPStore on the rendezvous port, the others connect
  // (retrying until options.timeout), then the backend's process group forms. Blocks until all
  // world_size ranks have arrived. kInvalidArgument for a bad rendezvous or backend,
  // kUnimplemented for NCCL in a LibTorch built without it, kUnavailable when the rendezvous
  // or the group cannot be formed in time.
  static absl::StatusOr<std::unique_ptr<DataParallelGroup>> Connect(const DistOptions& options);
  ~DataParallelGroup();

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  const std::string& backend() const { return backend_; }

  // Replaces each parameter's gradient by its mean over the ranks (one flat all-reduce). A
  // parameter without a gradient counts as zeros and gets one.
  void AverageGradients(const std::vector<torch::Tensor>& parameters);
  // The mean of `value` over the ranks.
  double Average(double value);
  // The minimum and maximum of `value` over the ranks.
  int64_t Min(int64_t value);
  int64_t Max(int64_t value);
  // Copies rank 0's values of `tensors` into every rank's (in place).
  void BroadcastFromRankZero(const std::vector<torch::Tensor>& tensors);

 private:
  DataParallelGroup(int rank, int world_size, std::string backend, torch::Device device);
  int64_t Reduce(int64_t value, bool max);
  // Runs `collective`, rethrowing any failure as DistributedError naming `what`.
  template <typename Fn>
  void Run(const char* what, Fn&& collective);

  int rank_;
  int world_size_;
  std::string backend_;
  torch::Device device_;  // where the reduced buffers live (CUDA for NCCL)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_DIST_H_
