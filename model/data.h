// Byte-level token data: loading a source's train.bin / val.bin into memory, drawing random
// training windows by mixture weight, and cutting the fixed validation windows. Torch-free; the
// trainer turns TokenBatch into tensors.
//
// File format (written by `scalelab data`): raw bytes, each byte one token in [0, 256).

#ifndef SCALELAB_MODEL_DATA_H_
#define SCALELAB_MODEL_DATA_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace scalelab::model {

// One named data source: a folder holding train.bin and val.bin (one byte per token).
struct DataSource {
  std::string name;     // Appears in metric names ("val_loss/<name>").
  std::string dir;      // Folder containing train.bin and val.bin.
  double weight = 1.0;  // Sampling weight, >= 0.
};

// A whole token file held in memory. Immutable after loading; safe to share between threads.
class ByteShard {
 public:
  // Reads `path` fully. Errors name the path:
  //   kNotFound    the file does not exist or cannot be opened;
  //   kOutOfRange  it holds fewer than `min_tokens` tokens (the message gives both sizes);
  //   kDataLoss    reading failed midway.
  static absl::StatusOr<ByteShard> Load(const std::string& path, int64_t min_tokens);

  explicit ByteShard(std::vector<uint8_t> tokens) : tokens_(std::move(tokens)) {}

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  uint8_t operator[](int64_t idx) const { return tokens_[static_cast<size_t>(idx)]; }

 private:
  std::vector<uint8_t> tokens_;
};

// One source's data as the trainer uses it.
struct SourceData {
  std::string name;
  double weight = 1.0;  // Normalized over all sources by the caller.
  ByteShard train;
  ByteShard val;
};

// Loads <dir>/train.bin and <dir>/val.bin; each must hold at least seq_len + 1 tokens (one full
// window). Errors as in ByteShard::Load.
absl::StatusOr<SourceData> LoadSource(const DataSource& source, int64_t seq_len);

// LoadSource for each source, in order; an error names the source ("data source \"web\": ...").
absl::StatusOr<std::vector<SourceData>> LoadSources(const std::vector<DataSource>& sources,
                                                    int64_t seq_len);

// batch_size windows of seq_len tokens, row-major [batch_size, seq_len]; targets[i] is the token
// after inputs[i] in the file. int64 because that is what embedding lookups index with.
struct TokenBatch {
  int64_t batch_size = 0;
  int64_t seq_len = 0;
  std::vector<int64_t> inputs;
  std::vector<int64_t> targets;
};

// Draws training windows at uniformly random offsets. For each window the source is drawn by
// weight, so a batch mixes sources in expectation at the mixture ratio (lower gradient variance
// than one source per step). Deterministic for a given seed on every platform: it uses
// std::mt19937_64 directly rather than the implementation-defined std:: distributions.
// Not thread-safe. The shards are not owned and must outlive the sampler.
class BatchSampler {
 public:
  // `shards` and `weights` have the same length; weights are >= 0 with a positive sum. Every
  // shard holds at least seq_len + 1 tokens.
  BatchSampler(std::vector<const ByteShard*> shards, const std::vector<double>& weights,
               int64_t seq_len, uint64_t seed);

  // Fills `batch` (reusing its storage) with batch_size fresh windows.
  void Sample(int64_t batch_size, TokenBatch& batch);

 private:
  size_t PickShard();

  std::vector<const ByteShard*> shards_;
  std::vector<double> cumulative_weights_;  // Normalized; the last entry is 1.
  int64_t seq_len_;
  std::mt19937_64 rng_;
};

// Number of validation windows that score at least val_tokens tokens: ceil(val_tokens/seq_len).
int64_t NumValidationWindows(int64_t val_tokens, int64_t seq_len);

// Validation windows [first_window, first_window + num_windows). Window w reads the tokens at
// positions w*seq_len .. w*seq_len + seq_len (modulo the shard size, so a short val.bin wraps):
// consecutive windows score disjoint, consecutive tokens from the start of the file.
TokenBatch ValidationWindows(const ByteShard& shard, int64_t seq_len, int64_t first_window,
                             int64_t num_windows);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_DATA_H_
