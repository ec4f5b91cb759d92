#include "model/batches.h"

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

TrainBatches::TrainBatches(const std::vector<SourceData>& sources, int64_t seq_len,
                           int64_t batch_size, uint64_t seed)
    : shards_(TrainShards(sources)),
      weights_(Weights(sources)),
      seq_len_(seq_len),
      seed_(seed),
      sampler_(shards_, weights_, seq_len, seed),
      batch_size_(batch_size) {}

TokenTensors TrainBatches::Next(const torch::Device& device) {
  sampler_.Sample(batch_size_, batch_);
  ++position_;
  return ToTensors(batch_, device);
}

void TrainBatches::Seek(int64_t position) {
  // Replays the sampler from its seed; cheap next to training the same batches.
  sampler_ = BatchSampler(shards_, weights_, seq_len_, seed_);
  for (int64_t idx = 0; idx < position; ++idx) sampler_.Sample(batch_size_, batch_);
  position_ = position;
}

std::vector<const ByteShard*> TrainBatches::TrainShards(const std::vector<SourceData>& sources) {
  std::vector<const ByteShard*> shards;
  for (const SourceData& source : sources) shards.push_back(&source.train);
  return shards;
}

std::vector<double> TrainBatches::Weights(const std::vector<SourceData>& sources) {
  std::vector<double> weights;
  for (const SourceData& source : sources) weights.push_back(source.weight);
  return weights;
}

}  // namespace scalelab::model
