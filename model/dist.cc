#include "model/dist.h"

#include <torch/torch.h>

#include <cstdlib>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#if defined(SCALELAB_WITH_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace scalelab::model {

struct DataParallelGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> group;
};

DistOptions DistOptionsFor(const scalelab::v1::ExecutionSpec& execution, bool cuda) {
  DistOptions options;
  options.rank = execution.rank();
  options.world_size = std::max(1, execution.world_size());
  options.rendezvous = execution.rendezvous();
  options.backend = execution.backend();
  options.cuda = cuda;
  return options;
}

absl::StatusOr<std::pair<std::string, uint16_t>> ParseRendezvous(const std::string& rendezvous) {
  const size_t colon = rendezvous.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(rendezvous.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("execution.rendezvous: expected \"host:port\" with a port in 1..65535, got \"",
                     rendezvous.substr(0, 200), "\""));
  }
  std::string host = rendezvous.substr(0, colon);
  // "[::1]:29500": the brackets only delimit the address.
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return std::make_pair(host, static_cast<uint16_t>(port));
}

namespace {

// Gloo needs an address of this host that the other ranks reach. A loopback rendezvous means
// every rank is on this machine; otherwise GLOO_SOCKET_IFNAME (PyTorch's variable) names the
// interface, else Gloo resolves this host's name.
std::shared_ptr<::gloo::transport::Device> GlooDevice(const std::string& rendezvous_host) {
  if (rendezvous_host == "127.0.0.1" || rendezvous_host == "localhost") {
    return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  }
  if (rendezvous_host == "::1") return c10d::ProcessGroupGloo::createDeviceForHostname("::1");
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      interface != nullptr && *interface != '\0') {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DataParallelGroup>> DataParallelGroup::Connect(
    const DistOptions& options) {
  if (options.world_size < 2 || options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("execution.rank: expected 0..world_size-1 with world_size >= 2, got rank ",
                     options.rank, " of ", options.world_size));
  }
  const std::string backend =
      options.backend.empty() ? (options.cuda ? "nccl" : "gloo") : options.backend;
  if (backend != "gloo" && backend != "nccl") {
    return absl::InvalidArgumentError(
        absl::StrCat("execution.backend: expected \"gloo\", \"nccl\" or \"\", got \"",
                     options.backend.substr(0, 100), "\""));
  }
  if (backend == "nccl" && !options.cuda) {
    return absl::InvalidArgumentError(
        "execution.backend: \"nccl\" needs execution.device \"cuda\"; expected \"gloo\" or \"\" "
        "on the CPU");
  }
#if !defined(SCALELAB_WITH_NCCL)
  if (backend == "nccl") {
    return absl::UnimplementedError(
        "execution.backend: \"nccl\", but this LibTorch was built without NCCL; expected "
        "\"gloo\" (Gloo also reduces CUDA tensors, through host memory)");
  }
#endif
  absl::StatusOr<std::pair<std::string, uint16_t>> address = ParseRendezvous(options.rendezvous);
  if (!address.ok()) return address.status();
  const torch::Device device(options.cuda ? torch::kCUDA : torch::kCPU);
  std::unique_ptr<DataParallelGroup> group(
      new DataParallelGroup(options.rank, options.world_size, backend, device));
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = address->second;
    store_options.isServer = options.rank == 0;
    store_options.numWorkers = static_cast<size_t>(options.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = options.timeout;
    group->impl_->store = c10::make_intrusive<c10d::TCPStore>(address->first, store_options);
    if (backend == "gloo") {
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(options.timeout);
      gloo_options->devices.push_back(GlooDevice(address->first));
      gloo_options->threads = 1;  // one reduction at a time: the loop waits for each
      group->impl_->group = c10::make_intrusive<c10d::ProcessGroupGloo>(
          group->impl_->store, options.rank, options.world_size, gloo_options);
    } else {
#if defined(SCALELAB_WITH_NCCL)
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = options.timeout;
      group->impl_->group = c10::make_intrusive<c10d::ProcessGroupNCCL>(
          group->impl_->store, options.rank, options.world_size, nccl_options);
#endif
    }
  } catch (const std::exception& error) {
    return absl::UnavailableError(absl::StrCat("rank ", options.rank, " of ", options.world_size,
                                               ": cannot join the ", backend, " group at ",
                                               options.rendezvous, ": ", error.what()));
  }
  return group;
}

DataParallelGroup::DataParallelGroup(int rank, int world_size, std::string backend,
                                     torch::Device device)
    : rank_(rank),
      world_size_(world_size),
      backend_(std::move(backend)),
      device_(device),
      impl_(std::make_unique<Impl>()) {}

DataParallelGroup::~DataParallelGroup() = default;

template <typename Fn>
void DataParallelGroup::Run(const char* what, Fn&& collective) {
  try {
    collective();
  } catch (const std::exception& error) {
    throw DistributedError(
        absl::StrCat("rank ", rank_, " of ", world_size_, ": ", backend_, " ", what,
                     " failed (a peer rank ended or timed out): ", error.what()));
  }
}

void DataParallelGroup::AverageGradients(const std::vector<torch::Tensor>& parameters) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  grads.reserve(parameters.size());
  for (const torch::Tensor& parameter : parameters) {
    if (!parameter.grad().defined()) parameter.mutable_grad() = torch::zeros_like(parameter);
    grads.push_back(parameter.grad().reshape({-1}));
  }
  // One flat buffer: one all-reduce per step instead of one per parameter.
  std::vector<torch::Tensor> flat{torch::cat(grads).to(device_)};
  Run("gradient all-reduce", [&] { impl_->group->allreduce(flat)->wait(); });
  flat[0].div_(static_cast<double>(world_size_));
  int64_t offset = 0;
  for (const torch::Tensor& parameter : parameters) {
    const int64_t numel = parameter.numel();
    parameter.mutable_grad().copy_(flat[0].narrow(0, offset, numel).view_as(parameter));
    offset += numel;
  }
}

double DataParallelGroup::Average(double value) {
  std::vector<torch::Tensor> buffer{
      torch::full({1}, value, torch::TensorOptions().dtype(torch::kFloat64).device(device_))};
  Run("all-reduce", [&] { impl_->group->allreduce(buffer)->wait(); });
  return buffer[0].item<double>() / static_cast<double>(world_size_);
}

int64_t DataParallelGroup::Reduce(int64_t value, bool max) {
  std::vector<torch::Tensor> buffer{
      torch::full({1}, value, torch::TensorOptions().dtype(torch::kInt64).device(device_))};
  c10d::AllreduceOptions reduce;
  reduce.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::MIN;
  Run("all-reduce", [&] { impl_->group->allreduce(buffer, reduce)->wait(); });
  return buffer[0].item<int64_t>();
}

int64_t DataParallelGroup::Min(int64_t value) { return Reduce(value, /*max=*/false); }
int64_t DataParallelGroup::Max(int64_t value) { return Reduce(value, /*max=*/true); }

void DataParallelGroup::BroadcastFromRankZero(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& tensor : tensors) {
    std::vector<torch::Tensor> buffer{tensor.detach().contiguous().to(device_)};
    Run("broadcast", [&] { impl_->group->broadcast(buffer)->wait(); });
    tensor.detach().copy_(buffer[0]);
  }
}

}  // namespace scalelab::model
