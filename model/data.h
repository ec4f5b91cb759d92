// Token data: memory-mapped token shards in the llm.c / nanoGPT layout, the exact, resumable
// mixture sampler that draws training windows from them, and the fixed validation windows.
// Torch-free; the trainer turns TokenBatch into tensors.
//
// Shard format (written by `scalelab data`; the contract is the DataSpec comment in
// proto/scalelab/v1/common.proto): a header of 256 little-endian int32 -- [0] magic 20240520,
// [1] version (1 = uint16 tokens, 2 = uint32 tokens), [2] token count, the rest 0 -- then the
// tokens, little-endian. A source folder holds train*.bin and val*.bin, read in name order.

#ifndef SCALELAB_MODEL_DATA_H_
#define SCALELAB_MODEL_DATA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace scalelab::model {

inline constexpr int32_t kShardMagic = 20240520;
inline constexpr int64_t kShardHeaderInts = 256;
inline constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;

// One named data source: a folder holding train*.bin and val*.bin shards.
struct DataSource {
  std::string name;     // Appears in metric names ("val_loss/<name>").
  std::string dir;      // Folder containing the shards.
  double weight = 1.0;  // Sampling weight, >= 0.
};

// One token shard, mapped read-only (MAP_PRIVATE) or held in memory. Move-only, immutable after
// opening; safe to share between threads.
class TokenShard {
 public:
  // Maps `path` and checks its header. With vocab_size > 0 every token must be below it (this
  // reads the whole file once). Errors name the path:
  //   kNotFound         the file cannot be opened;
  //   kDataLoss         shorter than the header, wrong magic, or the header's token count
  //                     disagrees with the file size;
  //   kInvalidArgument  version other than 1 or 2, or a token >= vocab_size (position, value).
  static absl::StatusOr<TokenShard> Open(const std::string& path, int64_t vocab_size = 0);
  // A shard of in-memory tokens (tests, generated data); `name` stands in for the path.
  static TokenShard FromTokens(std::vector<uint32_t> tokens, std::string name = "<memory>");

  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&& other) noexcept;
  TokenShard(const TokenShard&) = delete;
  TokenShard& operator=(const TokenShard&) = delete;
  ~TokenShard();

  int64_t size() const { return size_; }  // Tokens.
  const std::string& path() const { return path_; }
  // 1 = uint16 tokens, 2 = uint32 (in-memory shards report 2).
  int version() const { return bytes_per_token_ == 2 ? 1 : 2; }
  uint32_t operator[](int64_t idx) const;
  // Copies tokens [offset, offset + count) into `out`; the range must lie inside the shard.
  void Copy(int64_t offset, int64_t count, int64_t* out) const;

 private:
  TokenShard() = default;
  void Release();

  std::string path_;
  void* map_ = nullptr;  // The whole mapped file; nullptr for in-memory shards.
  size_t map_bytes_ = 0;
  std::vector<uint32_t> owned_;      // In-memory tokens.
  const uint8_t* tokens_ = nullptr;  // First token, in the map or in owned_.
  int bytes_per_token_ = 4;
  int64_t size_ = 0;
};

// The shards of one split (train or val) of a source, in name order. A window of seq_len inputs
// and its seq_len targets is seq_len + 1 consecutive tokens of one shard: windows never straddle
// two shards, so a shard shorter than seq_len + 1 contributes none.
class TokenSplit {
 public:
  // Opens <dir>/<prefix>*.bin (e.g. train.bin, train_000000.bin, ...) in name order. Errors:
  //   kNotFound    the folder has no such shard (the message names <dir>/<prefix>.bin);
  //   kOutOfRange  no shard holds seq_len + 1 tokens (the message gives the sizes and
  //                "need at least <seq_len + 1>");
  //   those of TokenShard::Open.
  static absl::StatusOr<TokenSplit> Open(const std::string& dir, const std::string& prefix,
                                         int64_t seq_len, int64_t vocab_size = 0);

  TokenSplit() = default;
  explicit TokenSplit(std::vector<TokenShard> shards) : shards_(std::move(shards)) {}

  const std::vector<TokenShard>& shards() const { return shards_; }
  int64_t size() const;  // Tokens in all shards.

 private:
  std::vector<TokenShard> shards_;
};

// One source's data as the trainer uses it.
struct SourceData {
  std::string name;
  double weight = 1.0;  // Normalized over all sources by the caller.
  TokenSplit train;
  TokenSplit val;
};

// Opens <dir>/train*.bin and <dir>/val*.bin; each split needs a shard of at least seq_len + 1
// tokens. vocab_size > 0 checks every token against it. Errors as in TokenSplit::Open.
absl::StatusOr<SourceData> LoadSource(const DataSource& source, int64_t seq_len,
                                      int64_t vocab_size = 0);

// LoadSource for each source, in order; an error names the source ("data source \"web\": ...").
absl::StatusOr<std::vector<SourceData>> LoadSources(const std::vector<DataSource>& sources,
                                                    int64_t seq_len, int64_t vocab_size = 0);

// batch_size windows of seq_len tokens, row-major [batch_size, seq_len]; targets[i] is the token
// after inputs[i] in the shard. int64 because that is what embedding lookups index with.
struct TokenBatch {
  int64_t batch_size = 0;
  int64_t seq_len = 0;
  std::vector<int64_t> inputs;
  std::vector<int64_t> targets;
};

// Rows per source when `rows` rows are split by `weights` (>= 0, positive sum; normalized here):
// largest-remainder rounding of weight * rows, ties going to the earlier source. Sums to `rows`.
std::vector<int64_t> MixtureCounts(const std::vector<double>& weights, int64_t rows);

// The training stream: batch `index` is a pure function of (seed, index), so a stream resumes
// anywhere without replaying it. Batches come in windows of `window` consecutive batches
// (R = window * batch_size rows); each source gets exactly MixtureCounts(weights, R) of a
// window's rows, placed by a seeded shuffle; each row starts at a uniform offset among all the
// window starts of its source's train shards. The window's generator is std::mt19937_64 seeded
// with the (window index + 1)-th SplitMix64 output from `seed`, and integers are drawn by
// rejection (no std:: distributions, which are implementation-defined), so the stream is the same
// on every platform. Not thread-safe. The splits are not owned and must outlive the sampler.
class BatchSampler {
 public:
  // `splits` and `weights` have the same length; every split with a positive weight holds a
  // window of seq_len + 1 tokens. batch_size and window are >= 1.
  BatchSampler(std::vector<const TokenSplit*> splits, std::vector<double> weights, int64_t seq_len,
               int64_t batch_size, int64_t window, uint64_t seed);

  // Fills `batch` (reusing its storage) with batch `index` (>= 0) of the stream. With
  // `row_sources`, also the source index of each row. Consecutive indices of one window reuse its
  // draw; any other index redraws its window (O(window * batch_size)).
  void Sample(int64_t index, TokenBatch& batch, std::vector<int>* row_sources = nullptr);

 private:
  struct Row {
    int source = 0;
    int64_t start = 0;  // Index among the source's window starts (see starts_).
  };
  void DrawWindow(int64_t window_idx);
  void CopyWindow(int source, int64_t start, int64_t* inputs, int64_t* targets) const;

  std::vector<const TokenSplit*> splits_;
  std::vector<int64_t> counts_;  // MixtureCounts over one window.
  // Per source, the cumulative number of window starts through each shard.
  std::vector<std::vector<int64_t>> starts_;
  int64_t seq_len_;
  int64_t batch_size_;
  int64_t window_;
  uint64_t seed_;
  int64_t drawn_window_ = -1;
  std::vector<Row> rows_;  // The drawn window's rows, batch after batch.
};

// Number of validation windows that score at least val_tokens tokens: ceil(val_tokens/seq_len).
int64_t NumValidationWindows(int64_t val_tokens, int64_t seq_len);

// Validation windows [first_window, first_window + num_windows). The split is cut into
// consecutive, non-overlapping windows (shard by shard from the start, window k of a shard reading
// tokens k*seq_len .. k*seq_len + seq_len, none straddling two shards); window w is the
// (w mod count)-th of them, so a short split repeats. The split holds at least one window.
TokenBatch ValidationWindows(const TokenSplit& split, int64_t seq_len, int64_t first_window,
                             int64_t num_windows);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_DATA_H_
