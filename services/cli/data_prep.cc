#include "services/cli/data_prep.h"

#include <zlib.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/status/status.h"
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
  if (auto status = WriteFile(dir / "train.bin", text.data(), train_tokens); !status.ok()) {
    return status;
  }
  if (auto status = WriteFile(dir / "val.bin", text.data() + train_tokens, val_tokens);
      !status.ok()) {
    return status;
  }
  std::string meta = absl::StrFormat(
      "{\"format\": \"scalelab-bytes-v1\", \"vocab_size\": 256, \"train_tokens\": %d, "
      "\"val_tokens\": %d, \"unigram_entropy_nats\": %.6f, \"source\": \"%s\"}\n",
      train_tokens, val_tokens, entropy,
      absl::StrReplaceAll(options.input, {{"\\", "\\\\"}, {"\"", "\\\""}}));
  if (auto status = WriteFile(dir / "meta.json", meta.data(), meta.size()); !status.ok()) {
    return status;
  }
  return DataPrepResult{train_tokens, val_tokens, entropy};
}

}  // namespace scalelab::cli
