// The training data stream as tensors: windows drawn by model/data.h's BatchSampler over the
// sources' train shards, exactly by mixture weight over each window of batches, moved to the
// training device.

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

// Random training windows, `batch_size` per call, deterministic for a seed: each run of
// `mixture_window` consecutive batches (counted from position 0) holds each source's exact share
// of rows (see BatchSampler). One call is one optimizer step's batch. Not thread-safe. The sources
// must outlive the stream.
class TrainBatches {
 public:
  TrainBatches(const std::vector<SourceData>& sources, int64_t seq_len, int64_t batch_size,
               uint64_t seed, int64_t mixture_window = 1);

  TokenTensors Next(const torch::Device& device);

  // Batches delivered so far: the data position a checkpoint saves.
  int64_t position() const { return position_; }
  // Continues the stream at `position` (>= 0): the batches that follow are exactly those a fresh
  // stream with the same sources, shape, window and seed delivers after `position` calls of
  // Next(). O(mixture_window * batch_size), independent of `position`.
  void Seek(int64_t position) { position_ = position; }

 private:
  BatchSampler sampler_;
  int64_t position_ = 0;
  TokenBatch batch_;  // Reused between calls.
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_BATCHES_H_
