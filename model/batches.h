// The training data stream as tensors: windows drawn by model/data.h's BatchSampler over the
// sources' train.bin, by mixture weight, moved to the training device.

#ifndef SCALELAB_MODEL_BATCHES_H_
#define SCALELAB_MODEL_BATCHES_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/data.h"

namespace scalelab::model {

// int64 [rows, seq_len] each; targets are the inputs shifted by one token.
struct TokenTensors {
  torch::Tensor inputs;
  torch::Tensor targets;
};

// Copies `batch` into tensors owned by `device` (the vectors are only borrowed).
TokenTensors ToTensors(TokenBatch& batch, const torch::Device& device);

// Random training windows, `batch_size` per call, deterministic for a seed. Not thread-safe. The
// sources must outlive the stream.
class TrainBatches {
 public:
  TrainBatches(const std::vector<SourceData>& sources, int64_t seq_len, int64_t batch_size,
               uint64_t seed);

  TokenTensors Next(const torch::Device& device);

  // Batches delivered so far: the data position a checkpoint saves.
  int64_t position() const { return position_; }
  // Continues the stream at `position`: the batches that follow are exactly those a fresh
  // stream with the same sources, shape and seed delivers after `position` calls of Next().
  void Seek(int64_t position);

 private:
  static std::vector<const ByteShard*> TrainShards(const std::vector<SourceData>& sources);
  static std::vector<double> Weights(const std::vector<SourceData>& sources);

  std::vector<const ByteShard*> shards_;
  std::vector<double> weights_;
  int64_t seq_len_;
  uint64_t seed_;
  BatchSampler sampler_;
  int64_t batch_size_;
  int64_t position_ = 0;
  TokenBatch batch_;  // Reused between calls.
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_BATCHES_H_
