#include "model/long_context.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/data.h"
#include "model/evaluation.h"
#include "model/registry.h"
#include "model/train_plan.h"
#include "runspec/run_config.h"
#include "scalelab/v1/common.pb.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

namespace v1 = scalelab::v1;

v1::ModelSpec TinySpec(const std::string& family, int64_t seq_len) {
  v1::RunConfig config;
  v1::ModelSpec& model = *config.mutable_model();
  model.set_family(family);
  model.set_vocab_size(256);
  model.set_d_model(32);
  model.set_n_layers(2);
  model.set_n_heads(4);
  model.set_seq_len(seq_len);
  model.set_d_ff(64);
  runspec::ApplyRunDefaults(&config);
  return config.model();
}

std::shared_ptr<CausalLM> BuildSeeded(const v1::ModelSpec& spec) {
  torch::manual_seed(5);
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
  REQUIRE(model.ok());
  return *model;
}

// Reads an example as the model sees it and answers with the value stored after the query key
// (the first occurrence of "<key>:" before the query), or with the last pair's value when
// `decoy`. Logits: 20 on the answer, 0 elsewhere, at every position.
class RecallOracle : public CausalLM {
 public:
  RecallOracle(int64_t max_seq_len, bool decoy) : max_seq_len_(max_seq_len), decoy_(decoy) {}

  torch::Tensor forward(const torch::Tensor& tokens) override {
    const int64_t rows = tokens.size(0);
    const int64_t length = tokens.size(1);
    torch::Tensor logits = torch::zeros({rows, length, 256});
    for (int64_t row = 0; row < rows; ++row) {
      const torch::Tensor sequence = tokens[row].contiguous();
      const int64_t* token = sequence.data_ptr<int64_t>();
      if (length < 2 || token[length - 1] != ':') continue;
      int64_t answer = -1;
      for (int64_t pos = 0; pos + 2 < length - 2; ++pos) {
        if (token[pos + 1] != ':' || token[pos + 2] < '0' || token[pos + 2] > '9') continue;
        if (decoy_ || token[pos] == token[length - 2]) {
          answer = token[pos + 2];
          if (!decoy_) break;
        }
      }
      if (answer >= 0) logits[row][length - 1][answer] = 20;
    }
    return logits;
  }
  int64_t NumNonEmbeddingParams() const override { return 0; }
  double FlopsPerToken() const override { return 0; }
  int64_t MaxSeqLen() const override { return max_seq_len_; }
  ParamGroups ParameterGroups() const override { return {}; }
  InferenceState NewInferenceState(int64_t batch_size) const override {
    return InferenceState{batch_size, 0, {}};
  }
  absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor&, InferenceState&) override {
    return absl::UnimplementedError("the oracle scores whole sequences only");
  }

 private:
  int64_t max_seq_len_;
  bool decoy_;
};

TEST_CASE("Recall examples follow the documented layout, deterministic by seed",
          "[model][unit][long_context]") {
  const int64_t context_len = 64;
  const int64_t pairs = 8;
  const std::string keys = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  const std::string filler = "!\"#$%&'()*+,-./;<=>?@[\\]^_`{|}~";
  std::set<int64_t> query_keys;
  for (int64_t example_idx = 0; example_idx < 20; ++example_idx) {
    absl::StatusOr<RecallExample> example = MakeRecallExample(context_len, pairs, 9, example_idx);
    REQUIRE(example.ok());
    const std::vector<int64_t>& tokens = example->tokens;
    REQUIRE(static_cast<int64_t>(tokens.size()) == context_len);
    std::set<int64_t> seen_keys;
    int64_t expected_value = -1;
    for (int64_t pair_idx = 0; pair_idx < pairs; ++pair_idx) {
      const int64_t key = tokens[3 * pair_idx];
      CHECK(keys.find(static_cast<char>(key)) != std::string::npos);
      CHECK(seen_keys.insert(key).second);  // Distinct keys.
      CHECK(tokens[3 * pair_idx + 1] == ':');
      CHECK(tokens[3 * pair_idx + 2] >= '0');
      CHECK(tokens[3 * pair_idx + 2] <= '9');
      if (key == tokens[context_len - 2]) expected_value = tokens[3 * pair_idx + 2];
    }
    for (int64_t pos = 3 * pairs; pos < context_len - 2; ++pos) {
      CHECK(filler.find(static_cast<char>(tokens[pos])) != std::string::npos);
    }
    CHECK(tokens[context_len - 1] == ':');
    CHECK(example->value == expected_value);  // The value really is the one after the key.
    query_keys.insert(tokens[context_len - 2]);
    // Same inputs, same example; another seed, another example.
    CHECK(MakeRecallExample(context_len, pairs, 9, example_idx)->tokens == tokens);
    CHECK(MakeRecallExample(context_len, pairs, 10, example_idx)->tokens != tokens);
  }
  CHECK(query_keys.size() > 1);
  // The shortest context runspec allows leaves one filler token.
  absl::StatusOr<RecallExample> shortest = MakeRecallExample(3 * pairs + 3, pairs, 9, 0);
  REQUIRE(shortest.ok());
  CHECK(shortest->tokens.size() == 3 * pairs + 3);
}

TEST_CASE("An oracle that reads the layout scores 1; a decoy and untrained models do not",
          "[model][unit][long_context]") {
  RecallOracle oracle(/*max_seq_len=*/512, /*decoy=*/false);
  absl::StatusOr<RecallResult> perfect = ScoreRecall(oracle, 128, 8, 40, 3, 256);
  REQUIRE(perfect.ok());
  CHECK_FALSE(perfect->skipped);
  CHECK(perfect->examples == 40);
  CHECK(perfect->accuracy == 1.0);
  CHECK(perfect->value_loss < 1e-6);

  RecallOracle decoy(/*max_seq_len=*/512, /*decoy=*/true);
  absl::StatusOr<RecallResult> guessed = ScoreRecall(decoy, 128, 8, 200, 3, 256);
  REQUIRE(guessed.ok());
  // Right only when the query is the last pair or its value happens to match: ~1/8 + 7/80.
  CHECK(guessed->accuracy < 0.4);
  CHECK(guessed->value_loss > 2);

  for (const std::string& family : RegisteredFamilies()) {
    INFO("family " << family);
    std::shared_ptr<CausalLM> model = BuildSeeded(TinySpec(family, 64));
    model->train();
    absl::StatusOr<RecallResult> untrained = ScoreRecall(*model, 64, 4, 100, 1, 256);
    REQUIRE(untrained.ok());
    CHECK_FALSE(untrained->skipped);
    CHECK(untrained->accuracy <= 0.25);
    CHECK(untrained->value_loss > 3);  // Near ln(256) = 5.5 for near-uniform logits.
    CHECK(model->is_training());
  }
}

TEST_CASE("Recall beyond MaxSeqLen is skipped, and RecallMetrics names what it scored",
          "[model][unit][long_context]") {
  RecallOracle oracle(/*max_seq_len=*/100, /*decoy=*/false);
  absl::StatusOr<RecallResult> skipped = ScoreRecall(oracle, 101, 4, 10, 1, 256);
  REQUIRE(skipped.ok());
  CHECK(skipped->skipped);

  TrainPlan plan;
  plan.recall_lengths = {32, 100, 200};
  plan.recall_pairs = 4;
  plan.recall_examples = 10;
  plan.seed = 4;
  absl::StatusOr<std::vector<std::pair<std::string, double>>> metrics =
      RecallMetrics(oracle, plan, 256);
  REQUIRE(metrics.ok());
  REQUIRE(metrics->size() == 4);
  CHECK((*metrics)[0].first == "recall_acc/32");
  CHECK((*metrics)[0].second == 1.0);
  CHECK((*metrics)[1].first == "recall_loss/32");
  CHECK((*metrics)[1].second < 1e-6);
  CHECK((*metrics)[2].first == "recall_acc/100");
  CHECK((*metrics)[3].first == "recall_loss/100");
}

TEST_CASE("ScoreRecall refuses shapes the layout cannot hold", "[model][unit][long_context]") {
  RecallOracle oracle(/*max_seq_len=*/512, /*decoy=*/false);
  CHECK(ScoreRecall(oracle, 64, 0, 10, 1, 256).status().message() ==
        "recall pairs: expected an integer in [1, 52], got 0");
  CHECK(ScoreRecall(oracle, 512, 53, 10, 1, 256).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(ScoreRecall(oracle, 26, 8, 10, 1, 256).status().message() ==
        "recall context_len: expected at least 3 * 8 + 3 = 27 tokens, got 26");
  CHECK(ScoreRecall(oracle, 64, 4, 0, 1, 256).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(ScoreRecall(oracle, 64, 4, 10, 1, 100).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

// Trains `model` briefly on random windows of `texts`, one text per step in turn.
void TrainBriefly(CausalLM& model, const std::vector<std::string>& texts, int64_t seq_len,
                  int64_t steps) {
  torch::manual_seed(3);
  torch::optim::AdamW optimizer(model.parameters(), torch::optim::AdamWOptions(3e-3));
  model.train();
  for (int64_t step = 0; step < steps; ++step) {
    const std::string& text = texts[static_cast<size_t>(step) % texts.size()];
    std::vector<int64_t> tokens(text.begin(), text.end());
    const torch::Tensor all = torch::tensor(tokens, torch::kLong);
    const torch::Tensor starts =
        torch::randint(0, static_cast<int64_t>(tokens.size()) - seq_len - 1, {8}, torch::kLong);
    std::vector<torch::Tensor> inputs;
    std::vector<torch::Tensor> targets;
    for (int64_t row = 0; row < 8; ++row) {
      const int64_t start = starts[row].item<int64_t>();
      inputs.push_back(all.slice(0, start, start + seq_len));
      targets.push_back(all.slice(0, start + 1, start + seq_len + 1));
    }
    optimizer.zero_grad();
    torch::Tensor loss = model.Loss(torch::stack(inputs), torch::stack(targets));
    loss.backward();
    optimizer.step();
  }
}

TEST_CASE("Position-bucket losses average to the validation loss and fall with context",
          "[model][unit][long_context]") {
  const int64_t seq_len = 32;
  testing::TempDir dir;
  const std::string corpus = testing::RepetitiveCorpus(20000);
  testing::WriteSource(dir, "easy", corpus);
  std::string noisy;
  for (int64_t idx = 0; idx < 4000; ++idx) noisy += static_cast<char>('a' + (idx * 7919) % 23);
  testing::WriteSource(dir, "noisy", noisy);
  absl::StatusOr<std::vector<SourceData>> sources = LoadSources(
      {{"easy", dir.path() + "/easy", 0.75}, {"noisy", dir.path() + "/noisy", 0.25}}, seq_len);
  REQUIRE(sources.ok());
  (*sources)[0].weight = 0.75;
  (*sources)[1].weight = 0.25;
  const Evaluator bucketed(*sources, seq_len, /*val_windows=*/12, /*chunk_windows=*/5, torch::kCPU,
                           /*position_buckets=*/4);
  const Evaluator plain(*sources, seq_len, 12, 5, torch::kCPU);
  for (const std::string& family : RegisteredFamilies()) {
    INFO("family " << family);
    std::shared_ptr<CausalLM> model = BuildSeeded(TinySpec(family, seq_len));
    // The arithmetic holds for any model, so only one family pays for training (~1 s of CPU)
    // to show the effect of context.
    const bool trained = family == "transformer";
    if (trained) TrainBriefly(*model, {corpus, noisy}, seq_len, 200);
    const Validation validation = bucketed.Evaluate(*model);
    REQUIRE(validation.position_buckets.size() == 4);
    double weighted = 0;
    int64_t next_first = 0;
    for (const BucketLoss& bucket : validation.position_buckets) {
      CHECK(bucket.first == next_first);
      CHECK(bucket.last == bucket.first + 7);
      next_first = bucket.last + 1;
      weighted += bucket.loss * static_cast<double>(bucket.last - bucket.first + 1);
    }
    CHECK(next_first == seq_len);
    CHECK(weighted / seq_len == Approx(validation.mixture_loss).epsilon(1e-6));
    // The buckets ride on the same per-source losses as before.
    const Validation without = plain.Evaluate(*model);
    CHECK(without.position_buckets.empty());
    CHECK(without.mixture_loss == Approx(validation.mixture_loss).epsilon(1e-9));
    // The mean over a source's windows equals CausalLM::Loss on them.
    TokenBatch windows = ValidationWindows((*sources)[0].val, seq_len, 0, 12);
    TokenTensors tensors = ToTensors(windows, torch::kCPU);
    torch::NoGradGuard no_grad;
    model->eval();
    CHECK(validation.per_source[0].loss ==
          Approx(model->Loss(tensors.inputs, tensors.targets).item<double>()).epsilon(1e-5));
    if (!trained) continue;
    // Position 0 sees one character of a phrase it must place; by the last bucket the model has
    // seen enough of it to continue.
    INFO("easy " << validation.per_source[0].loss << ", noisy " << validation.per_source[1].loss);
    INFO("first bucket " << validation.position_buckets.front().loss << ", last "
                         << validation.position_buckets.back().loss);
    CHECK(validation.position_buckets.back().loss < validation.position_buckets.front().loss);
  }
}

TEST_CASE("Uneven position buckets cover the window with sizes differing by one",
          "[model][unit][long_context]") {
  testing::TempDir dir;
  testing::WriteSource(dir, "easy", testing::RepetitiveCorpus(4000));
  absl::StatusOr<std::vector<SourceData>> sources =
      LoadSources({{"easy", dir.path() + "/easy", 1.0}}, 10);
  REQUIRE(sources.ok());
  const Evaluator evaluator(*sources, /*seq_len=*/10, 4, 4, torch::kCPU, /*position_buckets=*/3);
  std::shared_ptr<CausalLM> model = BuildSeeded(TinySpec("transformer", 10));
  const Validation validation = evaluator.Evaluate(*model);
  REQUIRE(validation.position_buckets.size() == 3);
  CHECK(validation.position_buckets[0].first == 0);
  CHECK(validation.position_buckets[0].last == 2);
  CHECK(validation.position_buckets[1].first == 3);
  CHECK(validation.position_buckets[1].last == 5);
  CHECK(validation.position_buckets[2].first == 6);
  CHECK(validation.position_buckets[2].last == 9);
  double weighted = 0;
  for (const BucketLoss& bucket : validation.position_buckets) {
    weighted += bucket.loss * static_cast<double>(bucket.last - bucket.first + 1);
  }
  CHECK(weighted / 10 == Approx(validation.mixture_loss).epsilon(1e-6));
}

}  // namespace
}  // namespace scalelab::model
