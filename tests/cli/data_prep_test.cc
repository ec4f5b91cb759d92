// `scalelab data`'s shard writer, checked against the llm.c layout with an independent parser
// (the reader, model/data.h, is LibTorch-side and may not be linked here).
#include "services/cli/data_prep.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace scalelab::cli {
namespace {

using Catch::Matchers::Contains;

class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "scalelab_data_prep_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

int32_t HeaderInt(const std::string& bytes, int idx) {
  uint32_t value = 0;
  for (int byte = 0; byte < 4; ++byte) {
    value |= static_cast<uint32_t>(static_cast<unsigned char>(bytes[idx * 4 + byte])) << (8 * byte);
  }
  return static_cast<int32_t>(value);
}

// The tokens of a version 1 shard, after checking its header against its size.
std::string ShardText(const std::string& path) {
  const std::string bytes = ReadAll(path);
  REQUIRE(bytes.size() >= 1024);
  CHECK(HeaderInt(bytes, 0) == 20240520);
  CHECK(HeaderInt(bytes, 1) == 1);
  const int64_t count = HeaderInt(bytes, 2);
  for (int idx = 3; idx < 256; ++idx) CHECK(HeaderInt(bytes, idx) == 0);
  REQUIRE(static_cast<int64_t>(bytes.size()) == 1024 + 2 * count);
  std::string text;
  int64_t high_bytes = 0;  // Byte tokens: the high byte of each uint16 is 0.
  for (int64_t idx = 0; idx < count; ++idx) {
    high_bytes += bytes[1024 + 2 * idx + 1] != 0;
    text.push_back(bytes[1024 + 2 * idx]);
  }
  CHECK(high_bytes == 0);
  return text;
}

std::string Corpus(int64_t bytes) {
  std::string text;
  for (int64_t idx = 0; text.size() < static_cast<size_t>(bytes); ++idx) {
    text += "line " + std::to_string(idx) + ": the quick brown fox.\n";
  }
  text.resize(static_cast<size_t>(bytes));
  return text;
}

TEST_CASE("scalelab data writes one uint16 llm.c shard per split and meta.json",
          "[unit][cli][data]") {
  TempDir dir;
  const std::string text = Corpus(100'000);
  std::ofstream(dir.path() + "/corpus.txt", std::ios::binary) << text;
  DataPrepOptions options;
  options.input = dir.path() + "/corpus.txt";
  options.output = dir.path() + "/out";
  options.val_fraction = 0.1;
  auto result = PrepareByteShards(options);
  REQUIRE(result.ok());
  CHECK(result->train_tokens == 90'000);
  CHECK(result->val_tokens == 10'000);
  CHECK(result->train_shards == 1);
  CHECK(result->val_shards == 1);
  CHECK(ShardText(dir.path() + "/out/train.bin") == text.substr(0, 90'000));
  CHECK(ShardText(dir.path() + "/out/val.bin") == text.substr(90'000));
  const std::string meta = ReadAll(dir.path() + "/out/meta.json");
  CHECK_THAT(meta, Contains("\"format\": \"llmc-bin\"") && Contains("\"version\": 1") &&
                       Contains("\"vocab_size\": 256") && Contains("\"train_tokens\": 90000") &&
                       Contains("\"val_tokens\": 10000") && Contains("\"train_shards\": 1") &&
                       Contains("unigram_entropy_nats"));
}

TEST_CASE("scalelab data --shard_tokens cuts near-equal shards and replaces old ones",
          "[unit][cli][data]") {
  TempDir dir;
  const std::string text = Corpus(50'000);
  // gzread reads gzip and plain text alike; check the gzip path.
  gzFile gz = gzopen((dir.path() + "/corpus.txt.gz").c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())) ==
          static_cast<int>(text.size()));
  gzclose(gz);
  std::filesystem::create_directories(dir.path() + "/out");
  std::ofstream(dir.path() + "/out/train.bin") << "stale";
  std::ofstream(dir.path() + "/out/val_000009.bin") << "stale";

  DataPrepOptions options;
  options.input = dir.path() + "/corpus.txt.gz";
  options.output = dir.path() + "/out";
  options.val_fraction = 0.2;
  options.shard_tokens = 15'000;
  auto result = PrepareByteShards(options);
  REQUIRE(result.ok());
  CHECK(result->train_tokens == 40'000);
  CHECK(result->val_tokens == 10'000);
  CHECK(result->train_shards == 3);  // 13334 + 13333 + 13333
  CHECK(result->val_shards == 1);
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/out/train.bin"));
  CHECK_FALSE(std::filesystem::exists(dir.path() + "/out/val_000009.bin"));
  std::string train;
  for (const char* name : {"train_000000.bin", "train_000001.bin", "train_000002.bin"}) {
    const std::string shard = ShardText(dir.path() + "/out/" + name);
    CHECK(shard.size() <= 15'000);
    CHECK(shard.size() >= 13'333);
    train += shard;
  }
  CHECK(train == text.substr(0, 40'000));
  CHECK(ShardText(dir.path() + "/out/val_000000.bin") == text.substr(40'000));
}

TEST_CASE("scalelab data refuses bad options naming the flag", "[unit][cli][data]") {
  DataPrepOptions options;
  options.input = "corpus.txt";
  options.output = "out";
  options.shard_tokens = -1;
  CHECK_THAT(std::string(options.Validate().message()),
             Contains("--shard_tokens") && Contains("-1"));
  options.shard_tokens = 0;
  options.val_fraction = 0.7;
  CHECK_THAT(std::string(options.Validate().message()), Contains("--val_fraction"));
  options.val_fraction = 0.05;
  options.input = "/nonexistent/corpus.txt";
  auto missing = PrepareByteShards(options);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(std::string(missing.status().message()), Contains("/nonexistent/corpus.txt"));
}

}  // namespace
}  // namespace scalelab::cli
