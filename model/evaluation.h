// Validation loss per source: each source's first val_windows windows of val.bin (the same ones
// at every evaluation and in every run with the same seq_len and eval.val_tokens), scored in
// chunks no larger than a training batch, so evaluation needs no more activation memory than a
// training step. The same forward passes also give the loss per bucket of positions within the
// window (eval.position_buckets), which shows whether later tokens profit from their context.

#ifndef SCALELAB_MODEL_EVALUATION_H_
#define SCALELAB_MODEL_EVALUATION_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/batches.h"
#include "model/causal_lm.h"
#include "model/data.h"

namespace scalelab::model {

struct SourceLoss {
  std::string name;
  double loss = 0;  // Mean cross-entropy, nats/token.
};

// Mean loss of the targets at window positions first..last (0-based, inclusive).
struct BucketLoss {
  int64_t first = 0;
  int64_t last = 0;
  double loss = 0;  // Nats/token, mixture-weighted across sources like mixture_loss.
};

struct Validation {
  std::vector<SourceLoss> per_source;  // In the order of the sources given to the Evaluator.
  double mixture_loss = 0;             // Weighted by the sources' (normalized) weights.
  // position_buckets equal spans of seq_len in order (bucket b covers positions
  // b * seq_len / n .. (b + 1) * seq_len / n - 1, so sizes differ by at most one); their means
  // weighted by bucket size give mixture_loss. Empty when position_buckets is 1.
  std::vector<BucketLoss> position_buckets;
};

// Holds the validation windows of every source on the device. Not thread-safe.
class Evaluator {
 public:
  // Cuts `val_windows` windows of `seq_len` tokens from each source's val.bin (a short file
  // wraps). `chunk_windows` windows are scored per forward pass. `position_buckets` in
  // [1, seq_len] (runspec's eval.position_buckets rule).
  Evaluator(const std::vector<SourceData>& sources, int64_t seq_len, int64_t val_windows,
            int64_t chunk_windows, const torch::Device& device, int64_t position_buckets = 1);

  // Scores `model` without gradients, in eval mode; restores the model's training mode.
  Validation Evaluate(CausalLM& model) const;

 private:
  struct ValidationSet {
    std::string name;
    double weight = 0;
    TokenTensors windows;
  };

  // Mean loss at each position of the window, float64 [seq_len] on the CPU.
  torch::Tensor PositionLossOf(CausalLM& model, const ValidationSet& set) const;

  std::vector<ValidationSet> sets_;
  int64_t seq_len_;
  int64_t chunk_windows_;
  int64_t position_buckets_;
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_EVALUATION_H_
