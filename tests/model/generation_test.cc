#include "model/generation.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/metrics.h"
#include "model/registry.h"
#include "runspec/run_config.h"
#include "scalelab/v1/common.pb.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

namespace v1 = scalelab::v1;
using Prompts = std::vector<std::vector<int64_t>>;

// A tiny model of `family` with runspec's defaults for its family-specific sections.
v1::ModelSpec TinySpec(const std::string& family) {
  v1::RunConfig config;
  v1::ModelSpec& model = *config.mutable_model();
  model.set_family(family);
  model.set_vocab_size(256);
  model.set_d_model(32);
  model.set_n_layers(2);
  model.set_n_heads(4);
  model.set_seq_len(32);
  model.set_d_ff(64);
  runspec::ApplyRunDefaults(&config);
  return config.model();
}

// Every registered family, and the hybrid in both of its modes, each as (label, spec).
std::vector<std::pair<std::string, v1::ModelSpec>> EveryFamily() {
  std::vector<std::pair<std::string, v1::ModelSpec>> specs;
  for (const std::string& family : RegisteredFamilies()) {
    specs.emplace_back(family, TinySpec(family));
    if (family == "hybrid") {
      v1::ModelSpec parallel = TinySpec(family);
      parallel.mutable_hybrid()->set_mode("parallel");
      specs.emplace_back("hybrid/parallel", parallel);
    }
  }
  return specs;
}

std::shared_ptr<CausalLM> Build(const v1::ModelSpec& spec, uint64_t seed = 7) {
  torch::manual_seed(seed);
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
  REQUIRE(model.ok());
  return *model;
}

std::vector<Generation> MustGenerate(CausalLM& model, const Prompts& prompts,
                                     const GenerateOptions& options) {
  absl::StatusOr<std::vector<Generation>> generations = Generate(model, prompts, options);
  INFO(generations.status().ToString());
  REQUIRE(generations.ok());
  REQUIRE(generations->size() == prompts.size());
  return *std::move(generations);
}

// A parameter-free model with a known next-token distribution: it predicts
// (last token + 1) mod vocab_size with logit 10 and every other token with logit 0, or, with
// `fixed_logits` set, those logits at every position whatever the input.
class ScriptedLM : public CausalLM {
 public:
  ScriptedLM(int64_t vocab_size, int64_t max_seq_len, torch::Tensor fixed_logits = {})
      : vocab_size_(vocab_size), max_seq_len_(max_seq_len), fixed_(std::move(fixed_logits)) {}

  torch::Tensor forward(const torch::Tensor& tokens) override {
    if (fixed_.defined()) {
      return fixed_.view({1, 1, vocab_size_}).expand({tokens.size(0), tokens.size(1), vocab_size_});
    }
    return torch::one_hot((tokens + 1) % vocab_size_, vocab_size_).to(torch::kFloat32) * 10;
  }
  int64_t NumNonEmbeddingParams() const override { return 0; }
  double FlopsPerToken() const override { return 0; }
  int64_t MaxSeqLen() const override { return max_seq_len_; }
  ParamGroups ParameterGroups() const override { return {}; }
  InferenceState NewInferenceState(int64_t batch_size) const override {
    InferenceState state;
    state.batch_size = batch_size;
    return state;
  }
  absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor& tokens,
                                            InferenceState& state) override {
    if (tokens.size(0) != state.batch_size) return absl::InvalidArgumentError("batch size");
    if (state.position + tokens.size(1) > max_seq_len_) return absl::OutOfRangeError("too long");
    state.position += tokens.size(1);
    ++steps;
    return forward(tokens);
  }

  int64_t steps = 0;  // ForwardStep calls.

 private:
  int64_t vocab_size_;
  int64_t max_seq_len_;
  torch::Tensor fixed_;
};

TEST_CASE("Cached greedy generation picks exactly the tokens of uncached greedy in every family",
          "[model][unit][generation]") {
  // Two prompts of length 5 share one InferenceState; the others form groups of their own.
  const Prompts prompts = {
      {72, 101, 108, 108, 111}, {1}, {200, 3, 9, 250, 17}, {10, 20, 30, 40, 50, 60, 70, 80, 90}};
  for (const auto& [label, spec] : EveryFamily()) {
    INFO("family " << label);
    std::shared_ptr<CausalLM> model = Build(spec);
    GenerateOptions options;
    options.max_new_tokens = 12;
    options.use_cache = true;
    const std::vector<Generation> cached = MustGenerate(*model, prompts, options);
    options.use_cache = false;
    const std::vector<Generation> uncached = MustGenerate(*model, prompts, options);
    for (size_t prompt_idx = 0; prompt_idx < prompts.size(); ++prompt_idx) {
      INFO("prompt " << prompt_idx);
      CHECK(cached[prompt_idx].tokens == uncached[prompt_idx].tokens);
      CHECK(cached[prompt_idx].tokens.size() == 12);
      CHECK(cached[prompt_idx].finish_reason == FinishReason::kLength);
      CHECK(uncached[prompt_idx].finish_reason == FinishReason::kLength);
    }
    // Batching must not change a prompt's tokens: each prompt alone gives the same output.
    options.use_cache = true;
    for (size_t prompt_idx = 0; prompt_idx < prompts.size(); ++prompt_idx) {
      const std::vector<Generation> alone = MustGenerate(*model, {prompts[prompt_idx]}, options);
      CHECK(alone[0].tokens == cached[prompt_idx].tokens);
    }
  }
}

TEST_CASE("Generation stops at the context limit with the same tokens cached and uncached",
          "[model][unit][generation]") {
  for (const auto& [label, spec] : EveryFamily()) {
    INFO("family " << label);
    std::shared_ptr<CausalLM> model = Build(spec);
    // After the merge a family's MaxSeqLen may be a large cap (RoPE); the limit is then reached
    // only with a prompt that long, so the prompt is sized from it, up to 4096 tokens.
    const int64_t max_seq_len = model->MaxSeqLen();
    if (max_seq_len > 4096) continue;
    std::vector<int64_t> prompt(static_cast<size_t>(max_seq_len - 3));
    for (size_t token_idx = 0; token_idx < prompt.size(); ++token_idx) {
      prompt[token_idx] = static_cast<int64_t>((token_idx * 37) % 256);
    }
    GenerateOptions options;
    options.max_new_tokens = 10;
    const std::vector<Generation> cached = MustGenerate(*model, {prompt, prompt}, options);
    options.use_cache = false;
    const std::vector<Generation> uncached = MustGenerate(*model, {prompt}, options);
    CHECK(cached[0].tokens.size() == 3);
    CHECK(cached[0].finish_reason == FinishReason::kContext);
    CHECK(cached[1].tokens == cached[0].tokens);
    CHECK(uncached[0].tokens == cached[0].tokens);
    CHECK(uncached[0].finish_reason == FinishReason::kContext);
  }
}

TEST_CASE("Stop sequences end a sequence and are cut; the others in its batch go on",
          "[model][unit][generation]") {
  ScriptedLM model(/*vocab_size=*/64, /*max_seq_len=*/40);
  GenerateOptions options;
  options.max_new_tokens = 8;
  options.stop = {{6, 7}, {30}};
  // Same length, one batch: the first reaches 6 7 after 4 tokens, the second never stops.
  // The third (another length) stops on its first token.
  const std::vector<Generation> out =
      MustGenerate(model, {{2, 3}, {40, 41}, {27, 28, 29}}, options);
  CHECK(out[0].tokens == std::vector<int64_t>{4, 5});
  CHECK(out[0].finish_reason == FinishReason::kStop);
  CHECK(out[1].tokens == std::vector<int64_t>{42, 43, 44, 45, 46, 47, 48, 49});
  CHECK(out[1].finish_reason == FinishReason::kLength);
  CHECK(out[2].tokens.empty());
  CHECK(out[2].finish_reason == FinishReason::kStop);
  // One prompt step, then one step per token after the first, for the longest of each group:
  // group {0, 1}: 1 + 7 steps (the second runs to the cap); group {2}: 1 step.
  CHECK(model.steps == 9);

  SECTION("a stop sequence spanning the prompt and the output does not count") {
    options.stop = {{3, 4}};
    const std::vector<Generation> spanning = MustGenerate(model, {{2, 3}}, options);
    CHECK(spanning[0].tokens.size() == 8);
    CHECK(spanning[0].finish_reason == FinishReason::kLength);
  }
}

TEST_CASE("Generation caps at max_new_tokens and at MaxSeqLen, prompt included",
          "[model][unit][generation]") {
  ScriptedLM model(/*vocab_size=*/64, /*max_seq_len=*/12);
  GenerateOptions options;
  options.max_new_tokens = 5;
  for (bool use_cache : {true, false}) {
    INFO("use_cache " << use_cache);
    options.use_cache = use_cache;
    const std::vector<Generation> out = MustGenerate(
        model, {{1}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}}, options);
    CHECK(out[0].tokens == std::vector<int64_t>{2, 3, 4, 5, 6});
    CHECK(out[0].finish_reason == FinishReason::kLength);
    CHECK(out[1].tokens == std::vector<int64_t>{10, 11, 12});
    CHECK(out[1].finish_reason == FinishReason::kContext);
    CHECK(out[2].tokens.empty());
    CHECK(out[2].finish_reason == FinishReason::kContext);
  }
  options.max_new_tokens = 0;
  const std::vector<Generation> none = MustGenerate(model, {{1}}, options);
  CHECK(none[0].tokens.empty());
  CHECK(none[0].finish_reason == FinishReason::kLength);
}

TEST_CASE("Generate refuses bad prompts by index and bad options by field",
          "[model][unit][generation]") {
  ScriptedLM model(/*vocab_size=*/64, /*max_seq_len=*/8);
  GenerateOptions options;
  auto message = [&](const Prompts& prompts, const GenerateOptions& with) {
    absl::StatusOr<std::vector<Generation>> result = Generate(model, prompts, with);
    REQUIRE_FALSE(result.ok());
    CHECK(result.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(result.status().message());
  };
  CHECK(message({{1}, {}}, options) == "prompts[1]: expected at least one token");
  CHECK(message({{1, 2, 64}}, options) == "prompts[0][2]: expected a token in [0, 64), got 64");
  CHECK(message({{1}, {2}, {-1}}, options) == "prompts[2][0]: expected a token in [0, 64), got -1");
  CHECK(message({{1}, {1, 2, 3, 4, 5, 6, 7, 8, 9}}, options) ==
        "prompts[1]: expected at most MaxSeqLen() = 8 tokens, got 9");
  GenerateOptions bad = options;
  bad.top_p = 0;
  CHECK(message({{1}}, bad) == "top_p: expected a value in (0, 1] (1 = off), got 0");
  bad = options;
  bad.temperature = -1;
  CHECK(message({{1}}, bad).find("temperature:") == 0);
  bad = options;
  bad.top_k = -2;
  CHECK(message({{1}}, bad).find("top_k:") == 0);
  bad = options;
  bad.max_new_tokens = -1;
  CHECK(message({{1}}, bad).find("max_new_tokens:") == 0);
  bad = options;
  bad.stop = {{1}, {}};
  CHECK(message({{1}}, bad).find("stop[1]:") == 0);
}

TEST_CASE("Generate runs in eval mode without autograd and restores training mode",
          "[model][unit][generation]") {
  std::shared_ptr<CausalLM> model = Build(TinySpec("transformer"));
  model->train();
  GenerateOptions options;
  options.max_new_tokens = 3;
  const std::vector<Generation> out = MustGenerate(*model, {{1, 2}}, options);
  CHECK(model->is_training());
  model->eval();
  MustGenerate(*model, {{1, 2}}, options);
  CHECK_FALSE(model->is_training());
  model->train();
  CHECK(MustGenerate(*model, {{1, 2}}, options)[0].tokens == out[0].tokens);
}

TEST_CASE("top_k 1 and a tiny top_p sample exactly the greedy tokens",
          "[model][unit][generation]") {
  const Prompts prompts = {{5, 6, 7}, {8, 9, 10}, {100}};
  for (const auto& [label, spec] : EveryFamily()) {
    INFO("family " << label);
    std::shared_ptr<CausalLM> model = Build(spec);
    GenerateOptions greedy;
    greedy.max_new_tokens = 10;
    const std::vector<Generation> expected = MustGenerate(*model, prompts, greedy);
    GenerateOptions top_k = greedy;
    top_k.temperature = 1.5;
    top_k.top_k = 1;
    top_k.seed = 11;
    GenerateOptions top_p = greedy;
    top_p.temperature = 1.5;
    top_p.top_p = 1e-9;
    top_p.seed = 12;
    const std::vector<Generation> by_k = MustGenerate(*model, prompts, top_k);
    const std::vector<Generation> by_p = MustGenerate(*model, prompts, top_p);
    for (size_t prompt_idx = 0; prompt_idx < prompts.size(); ++prompt_idx) {
      CHECK(by_k[prompt_idx].tokens == expected[prompt_idx].tokens);
      CHECK(by_p[prompt_idx].tokens == expected[prompt_idx].tokens);
    }
  }
}

TEST_CASE("Temperature sampling is deterministic by seed and changes with the seed",
          "[model][unit][generation]") {
  std::shared_ptr<CausalLM> model = Build(TinySpec("transformer"));
  const Prompts prompts = {{5, 6, 7}, {5, 6, 7}, {40}};
  GenerateOptions options;
  options.max_new_tokens = 16;
  options.temperature = 1.0;
  options.seed = 1;
  const std::vector<Generation> first = MustGenerate(*model, prompts, options);
  const std::vector<Generation> again = MustGenerate(*model, prompts, options);
  options.use_cache = false;
  const std::vector<Generation> uncached = MustGenerate(*model, prompts, options);
  options.use_cache = true;
  options.seed = 2;
  const std::vector<Generation> other = MustGenerate(*model, prompts, options);
  for (size_t prompt_idx = 0; prompt_idx < prompts.size(); ++prompt_idx) {
    CHECK(first[prompt_idx].tokens == again[prompt_idx].tokens);
    CHECK(first[prompt_idx].tokens == uncached[prompt_idx].tokens);
    // An untrained model's distribution is near uniform over 256 tokens: 16 equal draws by
    // chance are impossible in practice.
    CHECK(first[prompt_idx].tokens != other[prompt_idx].tokens);
  }
  // The same prompt at two indices draws from two streams (the samples of --samples=N).
  CHECK(first[0].tokens != first[1].tokens);
  // A prompt's sample does not depend on its batch mates.
  const std::vector<Generation> alone = MustGenerate(*model, {prompts[0]}, options);
  CHECK(alone[0].tokens == other[0].tokens);
}

TEST_CASE("Sampling follows the distribution left by temperature, top-k and top-p",
          "[model][unit][generation]") {
  // p = 0.6, 0.3, 0.1 over tokens 0, 1, 2 and nothing elsewhere.
  const torch::Tensor logits =
      torch::log(torch::tensor({0.6, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0}, torch::kFloat32));
  ScriptedLM model(/*vocab_size=*/8, /*max_seq_len=*/1024, logits);
  auto counts = [&](const GenerateOptions& options) {
    std::vector<int64_t> count(8, 0);
    const std::vector<Generation> out = MustGenerate(model, {{0}}, options);
    for (int64_t token : out[0].tokens) ++count[token];
    return count;
  };
  GenerateOptions options;
  options.max_new_tokens = 1000;
  options.temperature = 1.0;
  options.seed = 3;
  std::vector<int64_t> plain = counts(options);
  // Binomial(1000, p) stays within 5 standard deviations of its mean.
  CHECK(std::abs(plain[0] - 600) < 5 * std::sqrt(1000 * 0.6 * 0.4));
  CHECK(std::abs(plain[1] - 300) < 5 * std::sqrt(1000 * 0.3 * 0.7));
  CHECK(std::abs(plain[2] - 100) < 5 * std::sqrt(1000 * 0.1 * 0.9));
  CHECK(plain[3] + plain[4] + plain[5] + plain[6] + plain[7] == 0);

  GenerateOptions top_k = options;
  top_k.top_k = 2;
  std::vector<int64_t> by_k = counts(top_k);
  CHECK(by_k[2] == 0);
  CHECK(std::abs(by_k[0] - 667) < 5 * std::sqrt(1000 * 0.667 * 0.333));

  // 0.6 < 0.85 <= 0.9: the nucleus is {0, 1}; for 0.5 it is {0}.
  GenerateOptions top_p = options;
  top_p.top_p = 0.85;
  std::vector<int64_t> by_p = counts(top_p);
  CHECK(by_p[2] == 0);
  CHECK(by_p[1] > 0);
  top_p.top_p = 0.5;
  CHECK(counts(top_p)[0] == 1000);

  // Temperature 0.5 squares the odds: 0.36 : 0.09 : 0.01.
  GenerateOptions cold = options;
  cold.temperature = 0.5;
  std::vector<int64_t> by_cold = counts(cold);
  CHECK(std::abs(by_cold[0] - 783) < 5 * std::sqrt(1000 * 0.783 * 0.217));
}

TEST_CASE("GenerateFromWeights loads saved weights and reproduces the model's greedy text",
          "[model][unit][generation]") {
  testing::TempDir dir;
  v1::RunSpec spec;
  *spec.mutable_config()->mutable_model() = TinySpec("transformer");
  std::shared_ptr<CausalLM> model = Build(spec.config().model(), /*seed=*/21);
  VectorMetricSink sink;
  absl::StatusOr<std::string> path = SaveFinalWeights(*model, dir.path(), 1, sink);
  REQUIRE(path.ok());
  GenerateOptions options;
  options.max_new_tokens = 6;
  std::vector<int64_t> prompt = {'h', 'i', 0xff};
  const std::vector<Generation> expected = MustGenerate(*model, {prompt}, options);
  double generate_s = -1;
  absl::StatusOr<std::vector<Generation>> loaded =
      GenerateFromWeights(spec, *path, "hi\xff", /*samples=*/2, options, &generate_s);
  REQUIRE(loaded.ok());
  REQUIRE(loaded->size() == 2);
  CHECK((*loaded)[0].tokens == expected[0].tokens);
  CHECK((*loaded)[1].tokens == expected[0].tokens);
  CHECK(generate_s >= 0);
  CHECK(GenerateFromWeights(spec, *path, "hi", 0, options).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(GenerateFromWeights(spec, *path, "", 1, options).status().message() ==
        "prompts[0]: expected at least one token");
  CHECK(GenerateFromWeights(spec, dir.path() + "/missing.pt", "hi", 1, options).status().code() ==
        absl::StatusCode::kNotFound);
}

TEST_CASE("EscapeTokens prints bytes as readable text", "[model][unit][generation]") {
  CHECK(EscapeTokens({'a', ' ', 'Z', '~'}) == "a Z~");
  CHECK(EscapeTokens({'\\', '\n', '\t', 0, 0x7f, 0xff}) == "\\\\\\n\\t\\x00\\x7f\\xff");
  CHECK(EscapeTokens({300}) == "\\u{300}");
}

}  // namespace
}  // namespace scalelab::model
