// Validation loss per source: each source's first val_windows windows of val.bin (the same ones
// at every evaluation and in every run with the same seq_len and eval.val_tokens), scored in
// chunks no larger than a training batch, so evaluation needs no more activation memory than a
// training step.

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

struct Validation {
  std::vector<SourceLoss> per_source;  // In the order of the sources given to the Evaluator.
  double mixture_loss = 0;             // Weighted by the sources' (normalized) weights.
};

// Holds the validation windows of every source on the device. Not thread-safe.
class Evaluator {
 public:
  // Cuts `val_windows` windows of `seq_len` tokens from each source's val.bin (a short file
  // wraps). `chunk_windows` windows are scored per forward pass.
  Evaluator(const std::vector<SourceData>& sources, int64_t seq_len, int64_t val_windows,
            int64_t chunk_windows, const torch::Device& device);

  // Scores `model` without gradients, in eval mode; restores the model's training mode.
  Validation Evaluate(CausalLM& model) const;

 private:
  struct ValidationSet {
    std::string name;
    double weight = 0;
    TokenTensors windows;
  };

  double SourceLossOf(CausalLM& model, const ValidationSet& set) const;

  std::vector<ValidationSet> sets_;
  int64_t chunk_windows_;
};

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_EVALUATION_H_
