// Self-speculative decoding (GenerateSelfSpeculative, model/generation.h) against ordinary greedy
// Generate: the same tokens and finish reasons on random and LayerSkip-trained tiny
// transformers, over exit layers, draft lengths, batches, prompt lengths, stop sequences,
// max_new_tokens and the context limit.

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/generation.h"
#include "model/optimizer.h"
#include "model/registry.h"
#include "model/transformer.h"
#include "runspec/run_config.h"

namespace scalelab::model {
namespace {

namespace v1 = scalelab::v1;
using Prompts = std::vector<std::vector<int64_t>>;

v1::ModelSpec TinySpec(const std::string& family, int64_t n_layers) {
  v1::RunConfig config;
  v1::ModelSpec& model = *config.mutable_model();
  model.set_family(family);
  model.set_vocab_size(256);
  model.set_d_model(32);
  model.set_n_layers(static_cast<int32_t>(n_layers));
  model.set_n_heads(4);
  model.set_n_kv_heads(family == "transformer" ? 2 : 0);
  model.set_seq_len(32);
  model.set_d_ff(64);
  runspec::ApplyRunDefaults(&config);
  return config.model();
}

std::shared_ptr<TransformerImpl> BuildTransformer(int64_t n_layers, uint64_t seed) {
  torch::manual_seed(seed);
  absl::StatusOr<std::shared_ptr<CausalLM>> built = BuildModel(TinySpec("transformer", n_layers));
  REQUIRE(built.ok());
  return std::dynamic_pointer_cast<TransformerImpl>(*built);
}

// A transformer whose context is capped at `cap` tokens, to reach the limit with short prompts.
class CappedTransformer : public TransformerImpl {
 public:
  CappedTransformer(const v1::ModelSpec& spec, int64_t cap) : TransformerImpl(spec), cap_(cap) {}
  int64_t MaxSeqLen() const override { return cap_; }

 private:
  int64_t cap_;
};

// A few hundred LayerSkip steps on a repeating byte pattern, so that drafts are often accepted
// (and rounds then emit several tokens) while some are still rejected.
void TrainWithLayerSkip(TransformerImpl& model, int64_t steps) {
  const std::string text = "the cat sat on the mat; a dog ran to the log. ";
  std::vector<int64_t> stream;
  for (int repeat = 0; repeat < 20; ++repeat) {
    for (unsigned char byte : text) stream.push_back(byte);
  }
  const torch::Tensor all = torch::tensor(stream, torch::kLong);
  v1::LayerSkipSpec layerskip;
  layerskip.set_max_dropout(0.1);
  layerskip.set_exit_scale(1.0);
  layerskip.set_curriculum("all");
  layerskip.set_rotation(2);
  std::unique_ptr<torch::optim::AdamW> optimizer = MakeAdamW(model, 3e-3, 0.0);
  model.train();
  torch::manual_seed(1);
  for (int64_t step = 0; step < steps; ++step) {
    const torch::Tensor starts =
        torch::randint(0, static_cast<int64_t>(stream.size()) - 33, {8}, torch::kLong);
    std::vector<torch::Tensor> rows;
    for (int64_t row = 0; row < 8; ++row)
      rows.push_back(all.narrow(0, starts[row].item<int64_t>(), 33));
    const torch::Tensor batch = torch::stack(rows);
    optimizer->zero_grad();
    torch::Tensor loss =
        model.LayerSkipLoss(batch.narrow(1, 0, 32), batch.narrow(1, 1, 32), layerskip, step, steps);
    loss.backward();
    optimizer->step();
  }
}

std::vector<Generation> Greedy(CausalLM& model, const Prompts& prompts,
                               const GenerateOptions& options) {
  absl::StatusOr<std::vector<Generation>> generations = Generate(model, prompts, options);
  INFO(generations.status().ToString());
  REQUIRE(generations.ok());
  return *std::move(generations);
}

// Self-speculative output equals greedy output for every prompt, for each (E, d): every E of
// the model unless `exit_layers` is given, and d in `drafts`.
void CheckEqualsGreedy(CausalLM& model, const Prompts& prompts, const GenerateOptions& options,
                       SelfSpeculativeStats* total = nullptr, std::vector<int64_t> exit_layers = {},
                       const std::vector<int64_t>& drafts = {1, 3, 8}) {
  const std::vector<Generation> greedy = Greedy(model, prompts, options);
  const int64_t n_layers = dynamic_cast<TransformerImpl&>(model).NumLayers();
  if (exit_layers.empty()) {
    for (int64_t exit_layer = 1; exit_layer < n_layers; ++exit_layer) {
      exit_layers.push_back(exit_layer);
    }
  }
  for (int64_t exit_layer : exit_layers) {
    for (int64_t draft_tokens : drafts) {
      INFO("exit_layer " << exit_layer << ", draft_tokens " << draft_tokens);
      SelfSpeculativeStats stats;
      absl::StatusOr<std::vector<Generation>> speculative =
          GenerateSelfSpeculative(model, prompts, options, exit_layer, draft_tokens, &stats);
      INFO(speculative.status().ToString());
      REQUIRE(speculative.ok());
      REQUIRE(speculative->size() == prompts.size());
      for (size_t prompt_idx = 0; prompt_idx < prompts.size(); ++prompt_idx) {
        INFO("prompt " << prompt_idx);
        CHECK((*speculative)[prompt_idx].tokens == greedy[prompt_idx].tokens);
        CHECK((*speculative)[prompt_idx].finish_reason == greedy[prompt_idx].finish_reason);
      }
      CHECK(stats.accepted <= stats.drafted);
      if (total != nullptr) {
        total->drafted += stats.drafted;
        total->accepted += stats.accepted;
        total->verify_passes += stats.verify_passes;
        total->tokens += stats.tokens;
      }
    }
  }
}

const Prompts kPrompts = {{116, 104, 101, 32},
                          {1},
                          {200, 3, 9, 250},
                          {10, 20, 30, 40, 50, 60, 70, 80, 90},
                          {97, 32, 100, 111}};

TEST_CASE("Self-speculative decoding equals greedy decoding on random transformers",
          "[model][unit][generation][layerskip]") {
  for (uint64_t seed : {7, 8}) {
    INFO("seed " << seed);
    std::shared_ptr<TransformerImpl> model = BuildTransformer(4, seed);
    GenerateOptions options;
    options.max_new_tokens = 17;
    CheckEqualsGreedy(*model, kPrompts, options);
  }
}

TEST_CASE("Self-speculative decoding equals greedy decoding on a LayerSkip-trained transformer",
          "[model][unit][generation][layerskip]") {
  std::shared_ptr<TransformerImpl> model = BuildTransformer(4, 21);
  TrainWithLayerSkip(*model, 150);
  const Prompts prompts = {{'t', 'h', 'e', ' '},
                           {'a', ' ', 'd', 'o'},
                           {'c', 'a', 't', ' '},
                           {'s', 'a', 't', ' ', 'o', 'n'}};
  GenerateOptions options;
  options.max_new_tokens = 40;
  SelfSpeculativeStats total;
  CheckEqualsGreedy(*model, prompts, options, &total);
  // Trained drafts are accepted often, so rounds emit more than one token on average: the
  // equality above has been checked across real acceptances and rejections alike.
  INFO("accepted " << total.accepted << " of " << total.drafted);
  CHECK(total.AcceptanceRate() > 0.3);
  CHECK(total.AcceptanceRate() < 1.0);
  CHECK(total.tokens > total.verify_passes * 3 / 2);
  // Stop sequences cut mid-round: a stop on a frequent byte pair.
  options.stop = {{'t', ' '}, {';'}};
  CheckEqualsGreedy(*model, prompts, options, nullptr, {1, 2}, {3, 8});
  // max_new_tokens shorter than a draft, and of one token.
  options.stop.clear();
  for (int64_t max_new : {0, 1, 3}) {
    options.max_new_tokens = max_new;
    CheckEqualsGreedy(*model, prompts, options, nullptr, {2}, {3});
  }
}

TEST_CASE("Self-speculative decoding stops at the context limit as greedy decoding does",
          "[model][unit][generation][layerskip]") {
  torch::manual_seed(5);
  auto model = std::make_shared<CappedTransformer>(TinySpec("transformer", 3), 12);
  GenerateOptions options;
  options.max_new_tokens = 30;
  // Prompts of 4, 9 and 12 (already at the cap) tokens: 8, 3 and 0 tokens fit.
  const Prompts prompts = {
      {1, 2, 3, 4}, {5, 6, 7, 8, 9, 10, 11, 12, 13}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};
  const std::vector<Generation> greedy = Greedy(*model, prompts, options);
  CHECK(greedy[0].tokens.size() == 8);
  CHECK(greedy[1].tokens.size() == 3);
  CHECK(greedy[2].tokens.empty());
  for (const Generation& generation : greedy)
    CHECK(generation.finish_reason == FinishReason::kContext);
  CheckEqualsGreedy(*model, prompts, options);
}

TEST_CASE("GenerateSelfSpeculative refuses other families, sampling and bad E or d by name",
          "[model][unit][generation][layerskip]") {
  std::shared_ptr<TransformerImpl> model = BuildTransformer(4, 3);
  GenerateOptions options;
  auto message = [&](CausalLM& target, const GenerateOptions& with, int64_t exit_layer,
                     int64_t draft_tokens) {
    absl::StatusOr<std::vector<Generation>> result =
        GenerateSelfSpeculative(target, {{1, 2}}, with, exit_layer, draft_tokens);
    REQUIRE_FALSE(result.ok());
    CHECK(result.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(result.status().message());
  };
  CHECK(message(*model, options, 0, 4) ==
        "exit_layer: expected a layer in [1, 3] (the model has 4 layers), got 0");
  CHECK(message(*model, options, 4, 4) ==
        "exit_layer: expected a layer in [1, 3] (the model has 4 layers), got 4");
  CHECK(message(*model, options, 2, 0) == "draft_tokens: expected an integer >= 1, got 0");
  GenerateOptions sampled;
  sampled.temperature = 0.8;
  CHECK(message(*model, sampled, 2, 4) ==
        "temperature: expected 0 (self-speculative decoding is greedy), got 0.8");
  GenerateOptions bad;
  bad.top_p = 0;
  CHECK(message(*model, bad, 2, 4) == "top_p: expected a value in (0, 1] (1 = off), got 0");
  torch::manual_seed(3);
  absl::StatusOr<std::shared_ptr<CausalLM>> mamba = BuildModel(TinySpec("mamba2", 2));
  REQUIRE(mamba.ok());
  CHECK(message(**mamba, options, 1, 4).find("expected a model of the \"transformer\" family") !=
        std::string::npos);
  // A bad prompt is named by index, as Generate names it.
  absl::StatusOr<std::vector<Generation>> empty_prompt =
      GenerateSelfSpeculative(*model, {{1}, {}}, options, 2, 4);
  CHECK(empty_prompt.status().message() == "prompts[1]: expected at least one token");
  // Training mode is restored afterwards.
  model->train();
  REQUIRE(GenerateSelfSpeculative(*model, {{1, 2}}, options, 2, 4).ok());
  CHECK(model->is_training());
}

}  // namespace
}  // namespace scalelab::model
