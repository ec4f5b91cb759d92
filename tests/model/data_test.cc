// model/batches.h (LibTorch) comes before Catch: glog's CHECK, which torch pulls in, must be the
// one Catch redefines, or CHECK would abort instead of reporting. Hence no include sorting here.
// clang-format off
#include "model/data.h"
#include "model/batches.h"

#include <catch2/catch.hpp>
// clang-format on
#include <set>
#include <string>
#include <vector>

#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::ByteTokens;
using testing::EncodeShard;
using testing::TempDir;
using testing::WriteSource;

std::vector<uint32_t> Range(uint32_t first, uint32_t count) {
  std::vector<uint32_t> tokens;
  for (uint32_t idx = 0; idx < count; ++idx) tokens.push_back(first + idx);
  return tokens;
}

std::string MessageOf(const absl::Status& status) { return std::string(status.message()); }

TEST_CASE("A uint16 shard reads back its tokens", "[model][unit][data]") {
  TempDir dir;
  const std::vector<uint32_t> tokens = {0, 1, 255, 256, 65535, 7};
  const std::string path = dir.Write("train.bin", EncodeShard(tokens, 1));
  auto shard = TokenShard::Open(path);
  REQUIRE(shard.ok());
  CHECK(shard->version() == 1);
  REQUIRE(shard->size() == 6);
  for (int64_t idx = 0; idx < 6; ++idx) CHECK((*shard)[idx] == tokens[idx]);
  std::vector<int64_t> copied(3);
  shard->Copy(2, 3, copied.data());
  CHECK(copied == std::vector<int64_t>{255, 256, 65535});
}

TEST_CASE("A uint32 shard reads back tokens above 65535", "[model][unit][data]") {
  TempDir dir;
  const std::vector<uint32_t> tokens = {65536, 100000, 3, 4294967295u};
  auto shard = TokenShard::Open(dir.Write("train.bin", EncodeShard(tokens, 2)));
  REQUIRE(shard.ok());
  CHECK(shard->version() == 2);
  REQUIRE(shard->size() == 4);
  for (int64_t idx = 0; idx < 4; ++idx) CHECK((*shard)[idx] == tokens[idx]);
  // Moving keeps the mapping valid.
  TokenShard moved = *std::move(shard);
  CHECK(moved[1] == 100000);
}

TEST_CASE("Opening a missing shard fails naming the path", "[model][unit][data]") {
  TempDir dir;
  auto shard = TokenShard::Open(dir.path() + "/train.bin");
  REQUIRE_FALSE(shard.ok());
  CHECK(shard.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(MessageOf(shard.status()), Catch::Contains(dir.path() + "/train.bin"));
}

TEST_CASE("Each malformed shard fails with its own error naming the file", "[model][unit][data]") {
  TempDir dir;
  const std::string good = EncodeShard(Range(0, 100), 1);

  std::string bad_magic = good;
  bad_magic[0] = 1;
  const std::string magic_path = dir.Write("magic.bin", bad_magic);
  auto magic = TokenShard::Open(magic_path);
  REQUIRE_FALSE(magic.ok());
  CHECK(magic.status().code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(MessageOf(magic.status()), Catch::Contains(magic_path) && Catch::Contains("magic"));

  std::string bad_version = good;
  bad_version[4] = 3;
  const std::string version_path = dir.Write("version.bin", bad_version);
  auto version = TokenShard::Open(version_path);
  REQUIRE_FALSE(version.ok());
  CHECK(version.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(MessageOf(version.status()),
             Catch::Contains(version_path) && Catch::Contains("version is 3"));

  const std::string truncated_path = dir.Write("truncated.bin", good.substr(0, good.size() - 2));
  auto truncated = TokenShard::Open(truncated_path);
  REQUIRE_FALSE(truncated.ok());
  CHECK(truncated.status().code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(MessageOf(truncated.status()), Catch::Contains(truncated_path) &&
                                                Catch::Contains("100 tokens") &&
                                                Catch::Contains("198 bytes"));

  const std::string headless_path = dir.Write("headless.bin", good.substr(0, 100));
  auto headless = TokenShard::Open(headless_path);
  REQUIRE_FALSE(headless.ok());
  CHECK(headless.status().code() == absl::StatusCode::kDataLoss);
  CHECK_THAT(MessageOf(headless.status()), Catch::Contains(headless_path));

  dir.Write("short/train.bin", EncodeShard(Range(0, 10), 1));
  auto too_short = TokenSplit::Open(dir.path() + "/short", "train", 64);
  REQUIRE_FALSE(too_short.ok());
  CHECK(too_short.status().code() == absl::StatusCode::kOutOfRange);
  CHECK_THAT(MessageOf(too_short.status()), Catch::Contains(dir.path() + "/short/train.bin") &&
                                                Catch::Contains("holds 10") &&
                                                Catch::Contains("need at least 65"));
}

TEST_CASE("A token outside the vocabulary is reported with its shard, position and value",
          "[model][unit][data]") {
  TempDir dir;
  std::vector<uint32_t> tokens = Range(0, 50);
  tokens[17] = 300;
  const std::string path = dir.Write("train.bin", EncodeShard(tokens, 1));
  CHECK(TokenShard::Open(path).ok());  // No vocabulary given, no check.
  auto checked = TokenShard::Open(path, 256);
  REQUIRE_FALSE(checked.ok());
  CHECK(checked.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(MessageOf(checked.status()), Catch::Contains(path) && Catch::Contains("token 17") &&
                                              Catch::Contains("300") && Catch::Contains("256"));
}

TEST_CASE("A source loads its shards in name order and reports a missing split",
          "[model][unit][data]") {
  TempDir dir;
  dir.Write("web/train_000001.bin", EncodeShard(Range(1000, 40), 1));
  dir.Write("web/train_000000.bin", EncodeShard(Range(0, 40), 1));
  dir.Write("web/train_000002.bin", EncodeShard(Range(5000, 3), 2));  // Too short for a window.
  dir.Write("web/notes.txt", "not a shard");
  DataSource source{"web", dir.path() + "/web", 1.0};
  auto missing_val = LoadSources({source}, 16);
  REQUIRE_FALSE(missing_val.ok());
  CHECK(missing_val.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(MessageOf(missing_val.status()),
             Catch::Contains("\"web\"") && Catch::Contains(dir.path() + "/web/val.bin"));

  dir.Write("web/val.bin", EncodeShard(Range(9, 17), 1));
  auto loaded = LoadSource(source, 16);
  REQUIRE(loaded.ok());
  REQUIRE(loaded->train.shards().size() == 3);
  CHECK(loaded->train.shards()[0][0] == 0);
  CHECK(loaded->train.shards()[1][0] == 1000);
  CHECK(loaded->train.size() == 83);
  CHECK(loaded->val.size() == 17);
}

TEST_CASE("Sampled windows are contiguous within one shard, never straddling two",
          "[model][unit][data]") {
  std::vector<TokenShard> shards;
  shards.push_back(TokenShard::FromTokens(Range(0, 40)));
  shards.push_back(TokenShard::FromTokens(Range(1000, 5)));  // Shorter than a window: unused.
  shards.push_back(TokenShard::FromTokens(Range(2000, 20)));
  TokenSplit split(std::move(shards));
  BatchSampler sampler({&split}, {1.0}, 16, 8, 1, /*seed=*/7);
  TokenBatch batch;
  std::set<int64_t> shard_seen;
  for (int64_t index = 0; index < 50; ++index) {
    sampler.Sample(index, batch);
    REQUIRE(batch.inputs.size() == 8 * 16);
    for (int64_t row = 0; row < 8; ++row) {
      const int64_t first = batch.inputs[row * 16];
      shard_seen.insert(first / 1000);
      CHECK(((first >= 0 && first <= 40 - 17) || (first >= 2000 && first <= 2020 - 17)));
      for (int64_t pos = 0; pos < 16; ++pos) {
        const int64_t idx = row * 16 + pos;
        CHECK(batch.inputs[idx] == first + pos);
        CHECK(batch.targets[idx] == first + pos + 1);
      }
    }
  }
  CHECK(shard_seen == std::set<int64_t>{0, 2});
}

TEST_CASE("Mixture counts round by largest remainder with ties to the earlier source",
          "[model][unit][data]") {
  CHECK(MixtureCounts({1.0 / 3, 2.0 / 3}, 4) == std::vector<int64_t>{1, 3});
  CHECK(MixtureCounts({1.0 / 3, 2.0 / 3}, 12) == std::vector<int64_t>{4, 8});
  CHECK(MixtureCounts({0.5, 0.25, 0.25}, 6) == std::vector<int64_t>{3, 2, 1});
  CHECK(MixtureCounts({0.5, 0.25, 0.25}, 1) == std::vector<int64_t>{1, 0, 0});
  CHECK(MixtureCounts({1, 0, 1}, 3) == std::vector<int64_t>{2, 0, 1});
  CHECK(MixtureCounts({0, 1}, 5) == std::vector<int64_t>{0, 5});
  // 3.5, 1.75, 1.75: the larger remainders win over the larger source.
  CHECK(MixtureCounts({2, 1, 1}, 7) == std::vector<int64_t>{3, 2, 2});
}

// Rows per source in each window of `window` batches of `batch_size`, over `windows` windows.
std::vector<std::vector<int64_t>> CountsPerWindow(const std::vector<double>& weights,
                                                  int64_t batch_size, int64_t window,
                                                  int64_t windows, uint64_t seed) {
  std::vector<TokenSplit> splits;
  for (size_t source = 0; source < weights.size(); ++source) {
    std::vector<TokenShard> shards;
    shards.push_back(
        TokenShard::FromTokens(std::vector<uint32_t>(64, static_cast<uint32_t>(source))));
    splits.emplace_back(std::move(shards));
  }
  std::vector<const TokenSplit*> pointers;
  for (const TokenSplit& split : splits) pointers.push_back(&split);
  BatchSampler sampler(pointers, weights, 8, batch_size, window, seed);
  TokenBatch batch;
  std::vector<int> row_sources;
  std::vector<std::vector<int64_t>> counts;
  for (int64_t window_idx = 0; window_idx < windows; ++window_idx) {
    std::vector<int64_t> window_counts(weights.size(), 0);
    for (int64_t in_window = 0; in_window < window; ++in_window) {
      sampler.Sample(window_idx * window + in_window, batch, &row_sources);
      for (int64_t row = 0; row < batch_size; ++row) {
        ++window_counts[row_sources[row]];
        // The token says which source the row came from.
        REQUIRE(batch.inputs[row * 8] == row_sources[row]);
      }
    }
    counts.push_back(window_counts);
  }
  return counts;
}

TEST_CASE("Every window of batches holds each source's exact share of rows",
          "[model][unit][data]") {
  for (const auto& counts : CountsPerWindow({1.0 / 3, 2.0 / 3}, 4, 3, 20, 11)) {
    CHECK(counts == std::vector<int64_t>{4, 8});
  }
  for (const auto& counts : CountsPerWindow({0.5, 0.25, 0.25}, 6, 1, 20, 12)) {
    CHECK(counts == std::vector<int64_t>{3, 2, 1});
  }
  for (const auto& counts : CountsPerWindow({0.5, 0.0, 0.5}, 5, 2, 20, 13)) {
    CHECK(counts == std::vector<int64_t>{5, 0, 5});
  }
  // Exact per window, not per batch: the two batches of a window may split 4 rows 3 + 1.
  for (const auto& counts : CountsPerWindow({0.5, 0.5}, 4, 2, 40, 14)) {
    CHECK(counts == std::vector<int64_t>{4, 4});
  }
}

TEST_CASE("Batches of a mixture window differ from each other in composition",
          "[model][unit][data]") {
  std::vector<TokenSplit> splits;
  for (uint32_t source = 0; source < 2; ++source) {
    std::vector<TokenShard> shards;
    shards.push_back(TokenShard::FromTokens(std::vector<uint32_t>(64, source)));
    splits.emplace_back(std::move(shards));
  }
  BatchSampler sampler({&splits[0], &splits[1]}, {0.5, 0.5}, 8, 4, 8, 21);
  TokenBatch batch;
  std::vector<int> row_sources;
  std::set<int> ones_per_batch;
  int total_ones = 0;
  for (int64_t index = 0; index < 8; ++index) {
    sampler.Sample(index, batch, &row_sources);
    int ones = 0;
    for (int source : row_sources) ones += source;
    ones_per_batch.insert(ones);
    total_ones += ones;
  }
  // 16 rows of each source in the window's 32; the shuffle does not give every batch 2 + 2.
  CHECK(total_ones == 16);
  CHECK(ones_per_batch.size() > 1);
}

TEST_CASE("The stream is reproducible per seed and seeks without replay", "[model][unit][data]") {
  std::vector<SourceData> sources;
  for (int source = 0; source < 3; ++source) {
    std::vector<TokenShard> train;
    train.push_back(TokenShard::FromTokens(Range(source * 10000, 500)));
    train.push_back(TokenShard::FromTokens(Range(source * 10000 + 5000, 300)));
    std::vector<TokenShard> val;
    val.push_back(TokenShard::FromTokens(Range(0, 100)));
    sources.push_back(SourceData{"s" + std::to_string(source), source == 0 ? 0.5 : 0.25,
                                 TokenSplit(std::move(train)), TokenSplit(std::move(val))});
  }
  const torch::Device cpu(torch::kCPU);
  TrainBatches fresh(sources, 16, 5, /*seed=*/42, /*mixture_window=*/3);
  std::vector<torch::Tensor> inputs;
  std::vector<torch::Tensor> targets;
  for (int idx = 0; idx < 10; ++idx) {
    TokenTensors batch = fresh.Next(cpu);
    inputs.push_back(batch.inputs);
    targets.push_back(batch.targets);
  }
  CHECK(fresh.position() == 10);

  TrainBatches same_seed(sources, 16, 5, 42, 3);
  TrainBatches other_seed(sources, 16, 5, 43, 3);
  CHECK(torch::equal(same_seed.Next(cpu).inputs, inputs[0]));
  CHECK_FALSE(torch::equal(other_seed.Next(cpu).inputs, inputs[0]));

  for (int64_t position : {7, 4, 0, 9, 3}) {  // Mid-window, backwards, window starts.
    TrainBatches resumed(sources, 16, 5, 42, 3);
    resumed.Next(cpu);  // Draws a window the seek must not reuse.
    resumed.Seek(position);
    CHECK(resumed.position() == position);
    for (int64_t idx = position; idx < 10; ++idx) {
      TokenTensors batch = resumed.Next(cpu);
      CHECK(torch::equal(batch.inputs, inputs[idx]));
      CHECK(torch::equal(batch.targets, targets[idx]));
    }
  }
}

TEST_CASE("Validation windows tile the shards from the start and wrap", "[model][unit][data]") {
  std::vector<TokenShard> shards;
  shards.push_back(TokenShard::FromTokens(Range(0, 10)));   // Windows at 0 and 4; 8.. is short.
  shards.push_back(TokenShard::FromTokens(Range(100, 3)));  // None.
  shards.push_back(TokenShard::FromTokens(Range(200, 5)));  // One at 0.
  TokenSplit split(std::move(shards));
  CHECK(NumValidationWindows(10, 4) == 3);
  TokenBatch windows = ValidationWindows(split, 4, 0, 4);
  CHECK(windows.inputs ==
        std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 200, 201, 202, 203, 0, 1, 2, 3});
  CHECK(windows.targets ==
        std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 201, 202, 203, 204, 1, 2, 3, 4});
  TokenBatch later = ValidationWindows(split, 4, 2, 1);
  CHECK(later.inputs == std::vector<int64_t>{200, 201, 202, 203});
}

TEST_CASE("WriteSource writes byte-level shards the reader loads", "[model][unit][data]") {
  TempDir dir;
  WriteSource(dir, "text", "hello world, hello shards!");
  auto loaded = LoadSource(DataSource{"text", dir.path() + "/text", 1.0}, 1, 256);
  REQUIRE(loaded.ok());
  CHECK(loaded->train.size() == 23);
  CHECK(loaded->val.size() == 3);
  CHECK(loaded->train.shards()[0].version() == 1);
  CHECK(loaded->val.shards()[0][0] == static_cast<uint32_t>('d'));
  CHECK(ByteTokens("ab") == std::vector<uint32_t>{97, 98});
}

}  // namespace
}  // namespace scalelab::model
