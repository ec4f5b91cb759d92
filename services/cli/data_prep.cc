#include "services/cli/data_prep.h"

#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace scalelab::cli {
namespace {

absl::Status WriteFile(const std::filesystem::path& path, const char* data, size_t size) {
  // Write beside and rename, so a reader never sees a half-written shard.
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data, static_cast<std::streamsize>(size));
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp.string()));
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename to ", path.string(), ": ", error.message()));
  }
  return absl::OkStatus();
}

// The llm.c shard header: 256 little-endian int32.
constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersionUint16 = 1;
constexpr int kShardHeaderInts = 256;

// Byte tokens -> one shard file: header, then each byte widened to a little-endian uint16.
absl::Status WriteShard(const std::filesystem::path& path, std::string_view bytes) {
  std::string data(kShardHeaderInts * 4 + bytes.size() * 2, '\0');
  const int32_t header[3] = {kShardMagic, kShardVersionUint16, static_cast<int32_t>(bytes.size())};
  for (int idx = 0; idx < 3; ++idx) {
    for (int byte = 0; byte < 4; ++byte) {
      data[idx * 4 + byte] = static_cast<char>((static_cast<uint32_t>(header[idx]) >> (8 * byte)));
    }
  }
  char* tokens = data.data() + kShardHeaderInts * 4;
  for (size_t idx = 0; idx < bytes.size(); ++idx) tokens[idx * 2] = bytes[idx];
  return WriteFile(path, data.data(), data.size());
}

// Writes `bytes` as <prefix>.bin, or with shard_tokens > 0 as <prefix>_000000.bin, ... of
// near-equal size; returns the number of shards.
absl::StatusOr<int64_t> WriteSplit(const std::filesystem::path& dir, const std::string& prefix,
                                   std::string_view bytes, int64_t shard_tokens) {
  const int64_t total = static_cast<int64_t>(bytes.size());
  constexpr int64_t kMaxShardTokens = std::numeric_limits<int32_t>::max();
  if (shard_tokens == 0) {
    if (total > kMaxShardTokens) {
      return absl::InvalidArgumentError(
          absl::StrCat("--shard_tokens: the ", prefix, " split holds ", total,
                       " tokens, more than one shard's header can count (", kMaxShardTokens,
                       "); set --shard_tokens"));
    }
    if (auto status = WriteShard(dir / (prefix + ".bin"), bytes); !status.ok()) return status;
    return 1;
  }
  const int64_t shards = (total + shard_tokens - 1) / shard_tokens;
  int64_t first = 0;
  for (int64_t shard = 0; shard < shards; ++shard) {
    // The first total % shards shards take one token more.
    const int64_t size = total / shards + (shard < total % shards ? 1 : 0);
    const std::string name = absl::StrFormat("%s_%06d.bin", prefix, shard);
    if (auto status = WriteShard(
            dir / name, bytes.substr(static_cast<size_t>(first), static_cast<size_t>(size)));
        !status.ok()) {
      return status;
    }
    first += size;
  }
  return shards;
}

// Removes the shards of an earlier run: the reader takes every train*.bin / val*.bin.
absl::Status RemoveShards(const std::filesystem::path& dir) {
  std::error_code error;
  std::vector<std::filesystem::path> stale;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    const std::string name = it->path().filename().string();
    if ((absl::StartsWith(name, "train") || absl::StartsWith(name, "val")) &&
        absl::EndsWith(name, ".bin")) {
      stale.push_back(it->path());
    }
  }
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("--output: cannot list ", dir.string(), ": ", error.message()));
  }
  for (const std::filesystem::path& path : stale) {
    if (!std::filesystem::remove(path, error) && error) {
      return absl::UnavailableError(
          absl::StrCat("--output: cannot remove old shard ", path.string(), ": ", error.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DataPrepOptions::Validate() const {
  if (input.empty()) return absl::InvalidArgumentError("--input: expected a text file, got \"\"");
  if (output.empty()) return absl::InvalidArgumentError("--output: expected a folder, got \"\"");
  if (skip_bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--skip_bytes: expected >= 0, got ", skip_bytes));
  }
  if (max_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--max_bytes: expected >= 0, got ", max_bytes));
  }
  if (shard_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard_tokens: expected >= 0 (0 = one file per split), got ", shard_tokens));
  }
  if (!(val_fraction > 0 && val_fraction <= 0.5)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--val_fraction: expected a number in (0, 0.5], got ", val_fraction));
  }
  return absl::OkStatus();
}

absl::StatusOr<DataPrepResult> PrepareByteShards(const DataPrepOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  // gzread reads plain files unchanged, so one path serves both.
  gzFile in = gzopen(options.input.c_str(), "rb");
  if (in == nullptr) {
    return absl::NotFoundError(absl::StrCat("--input: cannot open ", options.input));
  }
  std::string text;
  std::array<char, 1 << 16> chunk;
  int64_t skipped = 0;
  bool last_was_blank = false;
  int n;
  while ((n = gzread(in, chunk.data(), chunk.size())) > 0) {
    for (int i = 0; i < n; ++i) {
      char c = chunk[i];
      if (skipped < options.skip_bytes) {
        ++skipped;
        continue;
      }
      if (options.collapse_whitespace && (c == ' ' || c == '\t')) {
        if (last_was_blank) continue;
        c = ' ';
        last_was_blank = true;
      } else {
        last_was_blank = false;
      }
      text.push_back(c);
    }
    if (options.max_bytes > 0 && static_cast<int64_t>(text.size()) >= options.max_bytes) break;
  }
  int error_code = 0;
  const char* error_text = gzerror(in, &error_code);
  gzclose(in);
  if (n < 0 || (error_code != Z_OK && error_code != Z_STREAM_END)) {
    return absl::DataLossError(absl::StrCat("--input: ", options.input, ": ", error_text));
  }
  if (options.max_bytes > 0 && static_cast<int64_t>(text.size()) > options.max_bytes) {
    text.resize(static_cast<size_t>(options.max_bytes));
  }
  const int64_t total = static_cast<int64_t>(text.size());
  const int64_t val_tokens = static_cast<int64_t>(std::floor(total * options.val_fraction));
  const int64_t train_tokens = total - val_tokens;
  // The trainer needs whole windows; 4096 tokens is far below any useful corpus anyway.
  if (val_tokens < 4096 || train_tokens < 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--input: expected at least 4096 tokens in each split, got ", train_tokens,
                     " train and ", val_tokens, " validation tokens from ", total, " bytes"));
  }

  std::array<int64_t, 256> counts{};
  for (int64_t i = 0; i < train_tokens; ++i) ++counts[static_cast<unsigned char>(text[i])];
  double entropy = 0;
  for (int64_t count : counts) {
    if (count == 0) continue;
    double p = static_cast<double>(count) / static_cast<double>(train_tokens);
    entropy -= p * std::log(p);
  }

  std::filesystem::path dir(options.output);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::UnavailableError(
        absl::StrCat("--output: cannot create ", options.output, ": ", error.message()));
  }
  if (auto status = RemoveShards(dir); !status.ok()) return status;
  const std::string_view all(text);
  absl::StatusOr<int64_t> train_shards = WriteSplit(
      dir, "train", all.substr(0, static_cast<size_t>(train_tokens)), options.shard_tokens);
  if (!train_shards.ok()) return train_shards.status();
  absl::StatusOr<int64_t> val_shards =
      WriteSplit(dir, "val", all.substr(static_cast<size_t>(train_tokens)), options.shard_tokens);
  if (!val_shards.ok()) return val_shards.status();
  std::string meta = absl::StrFormat(
      "{\"format\": \"llmc-bin\", \"version\": %d, \"vocab_size\": 256, \"train_tokens\": %d, "
      "\"val_tokens\": %d, \"train_shards\": %d, \"val_shards\": %d, "
      "\"unigram_entropy_nats\": %.6f, \"source\": \"%s\"}\n",
      kShardVersionUint16, train_tokens, val_tokens, *train_shards, *val_shards, entropy,
      absl::StrReplaceAll(options.input, {{"\\", "\\\\"}, {"\"", "\\\""}}));
  if (auto status = WriteFile(dir / "meta.json", meta.data(), meta.size()); !status.ok()) {
    return status;
  }
  return DataPrepResult{train_tokens, val_tokens, *train_shards, *val_shards, entropy};
}

}  // namespace scalelab::cli
