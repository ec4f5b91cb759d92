#include "model/data.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace scalelab::model {
namespace {

// Shards are little-endian on disk and read in place through the map.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "token shards are read in place");

// SplitMix64 (Steele, Lea, Flood 2014): consecutive counters give independent-looking 64-bit
// seeds, which is what makes every window's generator reachable in O(1).
uint64_t SplitMix64(uint64_t state) {
  uint64_t z = state + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Uniform in [0, n), n >= 1, without modulo bias: rejects the low (2^64 mod n) raw values.
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n) {
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t raw = rng();
    if (raw >= threshold) return raw % n;
  }
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

// Window starts of one shard: offsets 0 .. size - (seq_len + 1).
int64_t WindowStarts(const TokenShard& shard, int64_t seq_len) {
  return std::max<int64_t>(0, shard.size() - seq_len);
}

}  // namespace

absl::StatusOr<TokenShard> TokenShard::Open(const std::string& path, int64_t vocab_size) {
  FdCloser file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open token shard ", path, ": ", std::strerror(errno)));
  }
  struct stat info;
  if (::fstat(file.fd, &info) != 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot stat token shard ", path, ": ", std::strerror(errno)));
  }
  const int64_t file_bytes = info.st_size;
  if (file_bytes < kShardHeaderBytes) {
    return absl::DataLossError(absl::StrCat("token shard ", path, " holds ", file_bytes,
                                            " bytes, less than its ", kShardHeaderBytes,
                                            "-byte header: not an llm.c token shard"));
  }
  void* map = ::mmap(nullptr, static_cast<size_t>(file_bytes), PROT_READ, MAP_PRIVATE, file.fd, 0);
  if (map == MAP_FAILED) {
    return absl::DataLossError(
        absl::StrCat("cannot map token shard ", path, ": ", std::strerror(errno)));
  }
  TokenShard shard;
  shard.path_ = path;
  shard.map_ = map;
  shard.map_bytes_ = static_cast<size_t>(file_bytes);
  int32_t header[3];
  std::memcpy(header, map, sizeof(header));
  if (header[0] != kShardMagic) {
    return absl::DataLossError(absl::StrCat("token shard ", path, ": header magic is ", header[0],
                                            ", expected ", kShardMagic,
                                            " (llm.c layout: 256 int32 header, then tokens)"));
  }
  if (header[1] != 1 && header[1] != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("token shard ", path, ": header version is ", header[1],
                     ", expected 1 (uint16 tokens) or 2 (uint32 tokens)"));
  }
  shard.bytes_per_token_ = header[1] == 1 ? 2 : 4;
  const int64_t count = header[2];
  const int64_t payload = file_bytes - kShardHeaderBytes;
  if (count < 0 || count * shard.bytes_per_token_ != payload) {
    return absl::DataLossError(absl::StrCat(
        "token shard ", path, ": header says ", count, " tokens of ", shard.bytes_per_token_,
        " bytes, but the file holds ", payload, " bytes after the header",
        count * shard.bytes_per_token_ > payload ? " (truncated?)" : ""));
  }
  shard.size_ = count;
  shard.tokens_ = static_cast<const uint8_t*>(map) + kShardHeaderBytes;
  if (vocab_size > 0) {
    for (int64_t idx = 0; idx < count; ++idx) {
      const uint32_t token = shard[idx];
      if (token >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrCat("token shard ", path, ": token ", idx, " is ", token,
                         ", not below the model's vocab_size ", vocab_size));
      }
    }
  }
  return shard;
}

TokenShard TokenShard::FromTokens(std::vector<uint32_t> tokens, std::string name) {
  TokenShard shard;
  shard.path_ = std::move(name);
  shard.owned_ = std::move(tokens);
  shard.tokens_ = reinterpret_cast<const uint8_t*>(shard.owned_.data());
  shard.bytes_per_token_ = 4;
  shard.size_ = static_cast<int64_t>(shard.owned_.size());
  return shard;
}

TokenShard::TokenShard(TokenShard&& other) noexcept { *this = std::move(other); }

TokenShard& TokenShard::operator=(TokenShard&& other) noexcept {
  if (this == &other) return *this;
  Release();
  path_ = std::move(other.path_);
  map_ = std::exchange(other.map_, nullptr);
  map_bytes_ = std::exchange(other.map_bytes_, 0);
  owned_ = std::move(other.owned_);
  // A moved vector keeps its buffer, but recompute rather than rely on it.
  tokens_ = map_ != nullptr ? static_cast<const uint8_t*>(map_) + kShardHeaderBytes
                            : reinterpret_cast<const uint8_t*>(owned_.data());
  other.tokens_ = nullptr;
  bytes_per_token_ = other.bytes_per_token_;
  size_ = std::exchange(other.size_, 0);
  return *this;
}

TokenShard::~TokenShard() { Release(); }

void TokenShard::Release() {
  if (map_ != nullptr) ::munmap(map_, map_bytes_);
  map_ = nullptr;
  map_bytes_ = 0;
}

uint32_t TokenShard::operator[](int64_t idx) const {
  if (bytes_per_token_ == 2) {
    uint16_t token;
    std::memcpy(&token, tokens_ + idx * 2, sizeof(token));
    return token;
  }
  uint32_t token;
  std::memcpy(&token, tokens_ + idx * 4, sizeof(token));
  return token;
}

void TokenShard::Copy(int64_t offset, int64_t count, int64_t* out) const {
  // One branch per window rather than per token: this is the training input path.
  if (bytes_per_token_ == 2) {
    const uint8_t* from = tokens_ + offset * 2;
    for (int64_t idx = 0; idx < count; ++idx) {
      uint16_t token;
      std::memcpy(&token, from + idx * 2, sizeof(token));
      out[idx] = token;
    }
  } else {
    const uint8_t* from = tokens_ + offset * 4;
    for (int64_t idx = 0; idx < count; ++idx) {
      uint32_t token;
      std::memcpy(&token, from + idx * 4, sizeof(token));
      out[idx] = token;
    }
  }
}

absl::StatusOr<TokenSplit> TokenSplit::Open(const std::string& dir, const std::string& prefix,
                                            int64_t seq_len, int64_t vocab_size) {
  std::vector<std::string> paths;
  std::error_code error;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (absl::StartsWith(name, prefix) && absl::EndsWith(name, ".bin")) {
      paths.push_back(it->path().string());
    }
  }
  if (paths.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no ", prefix, " token shards: expected ", dir, "/", prefix, ".bin or ", dir,
                     "/", prefix, "_000000.bin, ... (written by `scalelab data`)",
                     error ? absl::StrCat("; ", dir, ": ", error.message()) : ""));
  }
  std::sort(paths.begin(), paths.end());
  std::vector<TokenShard> shards;
  std::vector<int64_t> sizes;
  bool has_window = false;
  for (const std::string& path : paths) {
    absl::StatusOr<TokenShard> shard = TokenShard::Open(path, vocab_size);
    if (!shard.ok()) return shard.status();
    sizes.push_back(shard->size());
    has_window = has_window || shard->size() >= seq_len + 1;
    shards.push_back(*std::move(shard));
  }
  if (!has_window) {
    return absl::OutOfRangeError(absl::StrCat(
        "token shard", paths.size() == 1 ? " " : "s ", absl::StrJoin(paths, ", "), " hold",
        paths.size() == 1 ? "s " : " ", absl::StrJoin(sizes, ", "), " tokens; need at least ",
        seq_len + 1, " (seq_len + 1, one full window) in one shard"));
  }
  return TokenSplit(std::move(shards));
}

int64_t TokenSplit::size() const {
  int64_t total = 0;
  for (const TokenShard& shard : shards_) total += shard.size();
  return total;
}

absl::StatusOr<SourceData> LoadSource(const DataSource& source, int64_t seq_len,
                                      int64_t vocab_size) {
  absl::StatusOr<TokenSplit> train = TokenSplit::Open(source.dir, "train", seq_len, vocab_size);
  if (!train.ok()) return train.status();
  absl::StatusOr<TokenSplit> val = TokenSplit::Open(source.dir, "val", seq_len, vocab_size);
  if (!val.ok()) return val.status();
  return SourceData{source.name, source.weight, *std::move(train), *std::move(val)};
}

absl::StatusOr<std::vector<SourceData>> LoadSources(const std::vector<DataSource>& sources,
                                                    int64_t seq_len, int64_t vocab_size) {
  std::vector<SourceData> loaded;
  for (const DataSource& source : sources) {
    absl::StatusOr<SourceData> data = LoadSource(source, seq_len, vocab_size);
    if (!data.ok()) {
      return absl::Status(data.status().code(), absl::StrCat("data source \"", source.name,
                                                             "\": ", data.status().message()));
    }
    loaded.push_back(*std::move(data));
  }
  return loaded;
}

std::vector<int64_t> MixtureCounts(const std::vector<double>& weights, int64_t rows) {
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::vector<int64_t> counts(weights.size(), 0);
  std::vector<double> remainders(weights.size(), 0.0);
  int64_t assigned = 0;
  for (size_t idx = 0; idx < weights.size(); ++idx) {
    const double quota = weights[idx] / total * static_cast<double>(rows);
    counts[idx] = std::min(rows, static_cast<int64_t>(quota));
    remainders[idx] = quota - static_cast<double>(counts[idx]);
    assigned += counts[idx];
  }
  // The sum of floors is at most `rows` and short of it by less than the number of sources; a
  // stable sort keeps ties in source order.
  std::vector<size_t> order(weights.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return remainders[a] > remainders[b]; });
  for (size_t rank = 0; assigned < rows; rank = (rank + 1) % order.size()) {
    // A zero weight never gets a row, even from rounding.
    if (weights[order[rank]] <= 0) continue;
    ++counts[order[rank]];
    ++assigned;
  }
  return counts;
}

BatchSampler::BatchSampler(std::vector<const TokenSplit*> splits, std::vector<double> weights,
                           int64_t seq_len, int64_t batch_size, int64_t window, uint64_t seed)
    : splits_(std::move(splits)),
      counts_(MixtureCounts(weights, window * batch_size)),
      seq_len_(seq_len),
      batch_size_(batch_size),
      window_(window),
      seed_(seed) {
  for (const TokenSplit* split : splits_) {
    std::vector<int64_t> cumulative;
    int64_t running = 0;
    for (const TokenShard& shard : split->shards()) {
      running += WindowStarts(shard, seq_len_);
      cumulative.push_back(running);
    }
    starts_.push_back(std::move(cumulative));
  }
}

void BatchSampler::DrawWindow(int64_t window_idx) {
  std::mt19937_64 rng(
      SplitMix64(seed_ + 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(window_idx)));
  rows_.clear();
  for (size_t source = 0; source < counts_.size(); ++source) {
    rows_.insert(rows_.end(), static_cast<size_t>(counts_[source]), Row{static_cast<int>(source)});
  }
  for (size_t idx = rows_.size() - 1; idx > 0; --idx) {  // Fisher-Yates.
    std::swap(rows_[idx], rows_[UniformBelow(rng, idx + 1)]);
  }
  // Offsets after the shuffle, in row order, so a row's offset does not depend on how many rows
  // other sources got.
  for (Row& row : rows_) {
    const uint64_t starts = static_cast<uint64_t>(starts_[row.source].back());
    row.start = static_cast<int64_t>(UniformBelow(rng, starts));
  }
  drawn_window_ = window_idx;
}

void BatchSampler::CopyWindow(int source, int64_t start, int64_t* inputs, int64_t* targets) const {
  const std::vector<int64_t>& cumulative = starts_[source];
  // The first shard whose cumulative count exceeds `start` holds it; empty shards never do.
  const size_t shard_idx = static_cast<size_t>(
      std::upper_bound(cumulative.begin(), cumulative.end(), start) - cumulative.begin());
  const int64_t offset = start - (shard_idx == 0 ? 0 : cumulative[shard_idx - 1]);
  const TokenShard& shard = splits_[source]->shards()[shard_idx];
  shard.Copy(offset, seq_len_, inputs);
  shard.Copy(offset + 1, seq_len_, targets);
}

void BatchSampler::Sample(int64_t index, TokenBatch& batch, std::vector<int>* row_sources) {
  const int64_t window_idx = index / window_;
  if (window_idx != drawn_window_) DrawWindow(window_idx);
  batch.batch_size = batch_size_;
  batch.seq_len = seq_len_;
  batch.inputs.resize(static_cast<size_t>(batch_size_ * seq_len_));
  batch.targets.resize(batch.inputs.size());
  if (row_sources != nullptr) row_sources->resize(static_cast<size_t>(batch_size_));
  const int64_t first_row = (index % window_) * batch_size_;
  for (int64_t row = 0; row < batch_size_; ++row) {
    const Row& drawn = rows_[static_cast<size_t>(first_row + row)];
    CopyWindow(drawn.source, drawn.start, batch.inputs.data() + row * seq_len_,
               batch.targets.data() + row * seq_len_);
    if (row_sources != nullptr) (*row_sources)[static_cast<size_t>(row)] = drawn.source;
  }
}

int64_t NumValidationWindows(int64_t val_tokens, int64_t seq_len) {
  return (val_tokens + seq_len - 1) / seq_len;
}

TokenBatch ValidationWindows(const TokenSplit& split, int64_t seq_len, int64_t first_window,
                             int64_t num_windows) {
  // Window k of a shard needs tokens up to k*seq_len + seq_len, so a shard holds
  // (size - 1) / seq_len of them.
  std::vector<int64_t> cumulative;
  int64_t total = 0;
  for (const TokenShard& shard : split.shards()) {
    total += std::max<int64_t>(0, (shard.size() - 1) / seq_len);
    cumulative.push_back(total);
  }
  TokenBatch batch;
  batch.batch_size = num_windows;
  batch.seq_len = seq_len;
  batch.inputs.resize(static_cast<size_t>(num_windows * seq_len));
  batch.targets.resize(batch.inputs.size());
  for (int64_t row = 0; row < num_windows; ++row) {
    const int64_t window = (first_window + row) % total;
    const size_t shard_idx = static_cast<size_t>(
        std::upper_bound(cumulative.begin(), cumulative.end(), window) - cumulative.begin());
    const int64_t local = window - (shard_idx == 0 ? 0 : cumulative[shard_idx - 1]);
    const TokenShard& shard = split.shards()[shard_idx];
    shard.Copy(local * seq_len, seq_len, batch.inputs.data() + row * seq_len);
    shard.Copy(local * seq_len + 1, seq_len, batch.targets.data() + row * seq_len);
  }
  return batch;
}

}  // namespace scalelab::model
