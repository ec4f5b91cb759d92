// Options for one training run of the byte-level model, and the helpers that turn the trainer's
// flag strings ("name=/dir,other=/dir2") into them. Torch-free, so the worker side of the contract
// can be tested without LibTorch.
//
// Every error names the flag it came from, the value it got and what was expected, e.g.
//   --batch_tokens=1000: expected a multiple of --seq_len=64
// and carries absl::StatusCode::kInvalidArgument.

#ifndef SCALELAB_MODEL_TRAIN_OPTIONS_H_
#define SCALELAB_MODEL_TRAIN_OPTIONS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace scalelab::model {

// One named data source: a folder holding train.bin and val.bin (one byte per token).
struct DataSource {
  std::string name;     // [A-Za-z0-9_.-]+; appears in metric names ("val_loss/<name>").
  std::string dir;      // Folder containing train.bin and val.bin.
  double weight = 1.0;  // Relative sampling weight; >= 0. Normalized over all sources.
};

enum class LrSchedule {
  kCosine,    // Linear warmup, then cosine decay to 10% of the peak rate at the last step.
  kConstant,  // Linear warmup, then the peak rate.
};

struct TrainOptions {
  std::vector<DataSource> sources;  // Required: at least one.

  // Model. Only "transformer" exists for now.
  std::string model_family = "transformer";
  int64_t d_model = 64;      // Residual width; must be a multiple of n_heads.
  int64_t n_layers = 2;      // Transformer blocks.
  int64_t n_heads = 4;       // Attention heads per block.
  int64_t seq_len = 64;      // Context length in tokens.
  int64_t d_ff = 0;          // MLP hidden width; 0 means 4 * d_model.
  int64_t vocab_size = 256;  // >= 256: the data is one byte per token.

  // Budget and optimizer.
  double tokens = 1e6;          // Total training tokens; steps = ceil(tokens / batch_tokens).
  int64_t batch_tokens = 4096;  // Tokens per optimizer step; a multiple of seq_len.
  double lr = 3e-3;             // Peak learning rate.
  LrSchedule schedule = LrSchedule::kCosine;
  double warmup = 0.05;       // Fraction of the steps spent in linear warmup, in [0, 1].
  double weight_decay = 0.1;  // AdamW decay on 2-D weight matrices (not embeddings).
  uint64_t seed = 0;          // Seeds parameter init and batch sampling.

  // Evaluation.
  double eval_every_tokens = 2e5;  // Validate every this many training tokens, and at the end.
  int64_t val_tokens = 65536;      // Scored tokens per validation and per source.

  // Execution.
  int threads = 1;  // Intra-op (and BLAS) threads; inter-op threads too, once per process.
  std::string device = "cpu";  // "cpu" or "cuda".

  // The MLP width actually used (resolves d_ff == 0).
  int64_t EffectiveDff() const { return d_ff > 0 ? d_ff : 4 * d_model; }
  // Optimizer steps of the run: ceil(tokens / batch_tokens). Call after Validate().
  int64_t NumSteps() const;
  // Sequences per step: batch_tokens / seq_len. Call after Validate().
  int64_t BatchSize() const { return batch_tokens / seq_len; }

  // Checks every field; the first problem found is returned as kInvalidArgument naming the flag.
  absl::Status Validate() const;
};

// Parses "k1=v1,k2=v2" into ordered pairs. Empty text gives an empty list. Whitespace around keys
// and values is trimmed. Errors (a missing '=', an empty key or value, a repeated key) name
// `flag_name`, e.g. "--data_sources: entry 2 "foo": expected name=value".
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseKeyValueList(
    absl::string_view flag_name, absl::string_view text);

// Parses --data_sources ("name=/dir,..."): each source gets weight 1.
absl::StatusOr<std::vector<DataSource>> ParseDataSources(absl::string_view text);

// Applies --data_mixture ("name=0.67,...") to `sources`. Empty text leaves equal weights. Every
// source must get exactly one weight and every name must be a source.
absl::Status ApplyDataMixture(absl::string_view text, std::vector<DataSource>& sources);

// Parses --schedule: "cosine" or "constant".
absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view text);
absl::string_view LrScheduleName(LrSchedule schedule);

// Learning rate for 0-based optimizer step `step` of `num_steps`: linear warmup over
// round(warmup * num_steps) steps (the first step already gets peak / warmup_steps), then the
// schedule. Cosine reaches 0.1 * peak at the last step.
double LearningRateAt(int64_t step, int64_t num_steps, double peak_lr, double warmup,
                      LrSchedule schedule);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_TRAIN_OPTIONS_H_
