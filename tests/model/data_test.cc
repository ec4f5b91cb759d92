#include "model/data.h"

#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

using testing::TempDir;

TEST_CASE("Loading a missing token file fails naming the path", "[model]") {
  TempDir dir;
  auto shard = ByteShard::Load(dir.path() + "/train.bin", 65);
  REQUIRE_FALSE(shard.ok());
  CHECK(shard.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(shard.status().message()), Catch::Contains(dir.path() + "/train.bin"));
}

TEST_CASE("Loading a too-short token file fails with the size needed", "[model]") {
  TempDir dir;
  const std::string path = dir.Write("val.bin", std::string(10, 'a'));
  auto shard = ByteShard::Load(path, 65);
  REQUIRE_FALSE(shard.ok());
  CHECK(shard.status().code() == absl::StatusCode::kOutOfRange);
  CHECK_THAT(std::string(shard.status().message()),
             Catch::Contains(path) && Catch::Contains("holds 10") && Catch::Contains("65"));
}

TEST_CASE("A source loads both files and reports which one is missing", "[model]") {
  TempDir dir;
  dir.Write("web/train.bin", std::string(100, 'x'));
  DataSource source{"web", dir.path() + "/web", 1.0};
  auto missing_val = LoadSource(source, 64);
  REQUIRE_FALSE(missing_val.ok());
  CHECK_THAT(std::string(missing_val.status().message()), Catch::Contains("val.bin"));

  dir.Write("web/val.bin", std::string(65, 'y'));
  auto loaded = LoadSource(source, 64);
  REQUIRE(loaded.ok());
  CHECK(loaded->train.size() == 100);
  CHECK(loaded->val.size() == 65);
  CHECK(loaded->val[0] == 'y');
}

TEST_CASE("Sampled windows are contiguous text with targets shifted by one", "[model]") {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += static_cast<char>(i % 251);
  ByteShard shard(std::vector<uint8_t>(text.begin(), text.end()));
  BatchSampler sampler({&shard}, {1.0}, 16, /*seed=*/7);
  TokenBatch batch;
  sampler.Sample(8, batch);
  REQUIRE(batch.inputs.size() == 8 * 16);
  for (int64_t row = 0; row < 8; ++row) {
    for (int64_t pos = 0; pos < 16; ++pos) {
      const int64_t idx = row * 16 + pos;
      CHECK(batch.targets[idx] == (batch.inputs[idx] + 1) % 251);
      if (pos > 0) CHECK(batch.inputs[idx] == batch.targets[idx - 1]);
    }
  }
}

TEST_CASE("The sampler is reproducible per seed and follows the mixture weights", "[model]") {
  ByteShard zeros(std::vector<uint8_t>(200, 0));
  ByteShard ones(std::vector<uint8_t>(200, 1));
  BatchSampler first({&zeros, &ones}, {3.0, 1.0}, 4, 11);
  BatchSampler second({&zeros, &ones}, {3.0, 1.0}, 4, 11);
  TokenBatch a;
  TokenBatch b;
  first.Sample(4000, a);
  second.Sample(4000, b);
  CHECK(a.inputs == b.inputs);
  int64_t from_ones = 0;
  for (int64_t row = 0; row < 4000; ++row) from_ones += a.inputs[row * 4];
  CHECK(from_ones / 4000.0 == Approx(0.25).margin(0.03));

  BatchSampler zero_weight({&zeros, &ones}, {1.0, 0.0}, 4, 11);
  zero_weight.Sample(500, a);
  CHECK(std::set<int64_t>(a.inputs.begin(), a.inputs.end()) == std::set<int64_t>{0});
}

TEST_CASE("Validation windows tile the file from the start and wrap", "[model]") {
  std::vector<uint8_t> tokens;
  for (int i = 0; i < 10; ++i) tokens.push_back(static_cast<uint8_t>(i));
  ByteShard shard(tokens);
  CHECK(NumValidationWindows(10, 4) == 3);
  TokenBatch windows = ValidationWindows(shard, 4, 0, 3);
  CHECK(windows.inputs == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1});
  CHECK(windows.targets == std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2});
}

}  // namespace
}  // namespace scalelab::model
