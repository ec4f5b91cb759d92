#include "model/batches.h"

#include <algorithm>

namespace scalelab::model {
namespace {

torch::Tensor ToTensor(std::vector<int64_t>& values, int64_t rows, int64_t cols,
                       const torch::Device& device) {
  // from_blob borrows the vector; the copy (clone or device transfer) makes the tensor own it.
  torch::Tensor view = torch::from_blob(values.data(), {rows, cols}, torch::kLong);
  return device.is_cpu() ? view.clone() : view.to(device);
}

}  // namespace

TokenTensors ToTensors(TokenBatch& batch, const torch::Device& device) {
  return {ToTensor(batch.inputs, batch.batch_size, batch.seq_len, device),
          ToTensor(batch.targets, batch.batch_size, batch.seq_len, device)};
}

namespace {

std::vector<const TokenSplit*> TrainSplits(const std::vector<SourceData>& sources) {
  std::vector<const TokenSplit*> splits;
  for (const SourceData& source : sources) splits.push_back(&source.train);
  return splits;
}

std::vector<double> Weights(const std::vector<SourceData>& sources) {
  std::vector<double> weights;
  for (const SourceData& source : sources) weights.push_back(source.weight);
  return weights;
}

}  // namespace

TrainBatches::TrainBatches(const std::vector<SourceData>& sources, int64_t seq_len,
                           int64_t batch_size, uint64_t seed, int64_t mixture_window)
    : sampler_(TrainSplits(sources), Weights(sources), seq_len, batch_size,
               std::max<int64_t>(1, mixture_window), seed) {}

TokenTensors TrainBatches::Next(const torch::Device& device) {
  sampler_.Sample(position_, batch_);
  ++position_;
  return ToTensors(batch_, device);
}

}  // namespace scalelab::model
