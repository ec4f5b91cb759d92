#include "model/data.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace scalelab::model {
namespace {

struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// A double in [0, 1) from the top 53 bits, the same on every platform.
double UnitDouble(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
}

}  // namespace

absl::StatusOr<ByteShard> ByteShard::Load(const std::string& path, int64_t min_tokens) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open token file ", path, ": ",
                                            std::strerror(errno), " (need at least ", min_tokens,
                                            " tokens = seq_len + 1)"));
  }
  // Read in chunks rather than trusting a size from fseek/ftell, so pipes and files that change
  // under us still give an honest count.
  std::vector<uint8_t> tokens;
  uint8_t chunk[1 << 16];
  size_t got = 0;
  while ((got = std::fread(chunk, 1, sizeof(chunk), file.get())) > 0) {
    tokens.insert(tokens.end(), chunk, chunk + got);
  }
  if (std::ferror(file.get())) {
    return absl::DataLossError(
        absl::StrCat("error reading token file ", path, " after ", tokens.size(), " bytes"));
  }
  if (static_cast<int64_t>(tokens.size()) < min_tokens) {
    return absl::OutOfRangeError(absl::StrCat("token file ", path, " holds ", tokens.size(),
                                              " tokens; need at least ", min_tokens,
                                              " (seq_len + 1, one full window)"));
  }
  return ByteShard(std::move(tokens));
}

absl::StatusOr<SourceData> LoadSource(const DataSource& source, int64_t seq_len) {
  absl::StatusOr<ByteShard> train = ByteShard::Load(source.dir + "/train.bin", seq_len + 1);
  if (!train.ok()) return train.status();
  absl::StatusOr<ByteShard> val = ByteShard::Load(source.dir + "/val.bin", seq_len + 1);
  if (!val.ok()) return val.status();
  return SourceData{source.name, source.weight, *std::move(train), *std::move(val)};
}

absl::StatusOr<std::vector<SourceData>> LoadSources(const std::vector<DataSource>& sources,
                                                    int64_t seq_len) {
  std::vector<SourceData> loaded;
  for (const DataSource& source : sources) {
    absl::StatusOr<SourceData> data = LoadSource(source, seq_len);
    if (!data.ok()) {
      return absl::Status(data.status().code(), absl::StrCat("data source \"", source.name,
                                                             "\": ", data.status().message()));
    }
    loaded.push_back(*std::move(data));
  }
  return loaded;
}

BatchSampler::BatchSampler(std::vector<const ByteShard*> shards, const std::vector<double>& weights,
                           int64_t seq_len, uint64_t seed)
    : shards_(std::move(shards)), seq_len_(seq_len), rng_(seed) {
  double total = 0;
  for (double weight : weights) total += weight;
  double running = 0;
  for (double weight : weights) {
    running += weight / total;
    cumulative_weights_.push_back(running);
  }
  cumulative_weights_.back() = 1.0;  // Guard against rounding leaving the last bucket short.
}

size_t BatchSampler::PickShard() {
  if (shards_.size() == 1) return 0;
  const double u = UnitDouble(rng_);
  size_t shard_idx = 0;
  // A zero-weight source has an empty bucket (equal cumulative bounds) and is never chosen.
  while (shard_idx + 1 < shards_.size() && u >= cumulative_weights_[shard_idx]) ++shard_idx;
  return shard_idx;
}

void BatchSampler::Sample(int64_t batch_size, TokenBatch& batch) {
  batch.batch_size = batch_size;
  batch.seq_len = seq_len_;
  batch.inputs.resize(static_cast<size_t>(batch_size * seq_len_));
  batch.targets.resize(batch.inputs.size());
  for (int64_t row = 0; row < batch_size; ++row) {
    const ByteShard& shard = *shards_[PickShard()];
    // Offsets 0 .. size - (seq_len + 1) inclusive. The modulo bias is below 2^-40 for any shard
    // that fits in memory.
    const uint64_t num_offsets = static_cast<uint64_t>(shard.size() - seq_len_);
    const int64_t offset = static_cast<int64_t>(rng_() % num_offsets);
    int64_t* inputs = batch.inputs.data() + row * seq_len_;
    int64_t* targets = batch.targets.data() + row * seq_len_;
    for (int64_t pos = 0; pos < seq_len_; ++pos) {
      inputs[pos] = shard[offset + pos];
      targets[pos] = shard[offset + pos + 1];
    }
  }
}

int64_t NumValidationWindows(int64_t val_tokens, int64_t seq_len) {
  return (val_tokens + seq_len - 1) / seq_len;
}

TokenBatch ValidationWindows(const ByteShard& shard, int64_t seq_len, int64_t first_window,
                             int64_t num_windows) {
  TokenBatch batch;
  batch.batch_size = num_windows;
  batch.seq_len = seq_len;
  batch.inputs.resize(static_cast<size_t>(num_windows * seq_len));
  batch.targets.resize(batch.inputs.size());
  const int64_t size = shard.size();
  for (int64_t row = 0; row < num_windows; ++row) {
    const int64_t start = (first_window + row) * seq_len;
    for (int64_t pos = 0; pos < seq_len; ++pos) {
      batch.inputs[row * seq_len + pos] = shard[(start + pos) % size];
      batch.targets[row * seq_len + pos] = shard[(start + pos + 1) % size];
    }
  }
  return batch;
}

}  // namespace scalelab::model
