// The transformer family through the CausalLM interface and the registry.

#include "model/transformer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <memory>

#include "model/causal_lm.h"
#include "model/registry.h"

namespace scalelab::model {
namespace {

using torch::indexing::Slice;

v1::ModelSpec SmallSpec() {
  v1::ModelSpec spec;
  spec.set_family("transformer");
  spec.set_vocab_size(256);
  spec.set_d_model(32);
  spec.set_n_layers(2);
  spec.set_n_heads(4);
  spec.set_seq_len(16);
  spec.set_d_ff(64);
  return spec;
}

std::shared_ptr<CausalLM> Build(const v1::ModelSpec& spec) {
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
  REQUIRE(model.ok());
  return *model;
}

TEST_CASE("The registry builds a transformer and refuses unknown families by name", "[model]") {
  CHECK(RegisteredFamilies() == std::vector<std::string>{"transformer"});
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  CHECK(std::dynamic_pointer_cast<TransformerImpl>(model) != nullptr);
  CHECK(model->MaxSeqLen() == 16);

  v1::ModelSpec mamba = SmallSpec();
  mamba.set_family("mamba");
  absl::StatusOr<std::shared_ptr<CausalLM>> refused = BuildModel(mamba);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(refused.status().message() ==
        "model.family: expected one of \"transformer\", got \"mamba\"");
}

TEST_CASE("The forward pass gives one logit per vocabulary entry at every position", "[model]") {
  torch::manual_seed(0);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  torch::Tensor tokens = torch::randint(0, 256, {3, 16}, torch::kLong);
  CHECK(model->forward(tokens).sizes() == torch::IntArrayRef({3, 16, 256}));
  // Shorter contexts than seq_len work too.
  CHECK(model->forward(tokens.narrow(1, 0, 5)).sizes() == torch::IntArrayRef({3, 5, 256}));
}

TEST_CASE("An untrained model predicts close to uniform bytes", "[model]") {
  torch::manual_seed(1);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  torch::Tensor inputs = torch::randint(0, 256, {8, 16}, torch::kLong);
  torch::Tensor targets = torch::randint(0, 256, {8, 16}, torch::kLong);
  CHECK(model->Loss(inputs, targets).item<double>() == Approx(std::log(256.0)).margin(0.3));
}

TEST_CASE("Changing a future token leaves earlier logits unchanged", "[model]") {
  torch::manual_seed(2);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = torch::randint(0, 256, {2, 16}, torch::kLong);
  torch::Tensor changed = tokens.clone();
  changed.index_put_({Slice(), 10}, (tokens.index({Slice(), 10}) + 1) % 256);
  torch::Tensor before = model->forward(tokens);
  torch::Tensor after = model->forward(changed);
  CHECK(torch::equal(before.index({Slice(), Slice(0, 10)}), after.index({Slice(), Slice(0, 10)})));
  CHECK_FALSE(torch::allclose(before.index({Slice(), Slice(10, 16)}),
                              after.index({Slice(), Slice(10, 16)})));
}

TEST_CASE("Cached step-by-step logits equal the full forward pass", "[model]") {
  torch::manual_seed(3);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  model->eval();
  torch::Tensor tokens = torch::randint(0, 256, {2, 16}, torch::kLong);
  torch::Tensor full;
  {
    torch::NoGradGuard no_grad;
    full = model->forward(tokens);
  }
  // A 5-token prompt, then one token at a time up to the full context.
  InferenceState state = model->NewInferenceState(2);
  REQUIRE(state.layers.size() == 2);
  std::vector<torch::Tensor> pieces;
  absl::StatusOr<torch::Tensor> prompt = model->ForwardStep(tokens.narrow(1, 0, 5), state);
  REQUIRE(prompt.ok());
  pieces.push_back(*prompt);
  for (int64_t pos = 5; pos < 16; ++pos) {
    absl::StatusOr<torch::Tensor> step = model->ForwardStep(tokens.narrow(1, pos, 1), state);
    REQUIRE(step.ok());
    CHECK(step->sizes() == torch::IntArrayRef({2, 1, 256}));
    pieces.push_back(*step);
  }
  CHECK(state.position == 16);
  CHECK(state.layers[0].keys.sizes() == torch::IntArrayRef({2, 4, 16, 8}));
  torch::Tensor stepped = torch::cat(pieces, /*dim=*/1);
  CHECK_FALSE(stepped.requires_grad());
  CHECK(torch::allclose(stepped, full, /*rtol=*/0, /*atol=*/1e-5));

  // The context is full now; a mismatched batch is refused too.
  absl::StatusOr<torch::Tensor> beyond = model->ForwardStep(tokens.narrow(1, 0, 1), state);
  REQUIRE_FALSE(beyond.ok());
  CHECK(beyond.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(state.position == 16);
  InferenceState other = model->NewInferenceState(3);
  CHECK(model->ForwardStep(tokens, other).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("Parameter counts, FLOPs per token and decay groups match a hand count", "[model]") {
  const v1::ModelSpec spec = SmallSpec();
  std::shared_ptr<CausalLM> model = Build(spec);
  const int64_t d = 32;
  const int64_t d_ff = 64;
  const int64_t per_block = 2 * 2 * d                   // two LayerNorms
                            + d * 3 * d + 3 * d         // qkv
                            + d * d + d                 // attention projection
                            + d * d_ff + d_ff           // fc
                            + d_ff * d + d;             // fc_proj
  const int64_t non_embedding = 2 * per_block + 2 * d;  // + final LayerNorm
  CHECK(non_embedding == 17152);
  CHECK(model->NumNonEmbeddingParams() == non_embedding);
  CHECK(model->NumParams() == non_embedding + 256 * d + 16 * d);
  // 6 N + 6 n_layers seq_len d_model = 6 * 17152 + 6 * 2 * 16 * 32.
  CHECK(model->FlopsPerToken() == 102912.0 + 6144.0);

  ParamGroups groups = model->ParameterGroups();
  CHECK(groups.decay.size() == 4 * 2);  // qkv, proj, fc, fc_proj per block
  CHECK(groups.decay.size() + groups.no_decay.size() == model->parameters().size());
  for (const torch::Tensor& weight : groups.decay) CHECK(weight.dim() == 2);

  v1::ModelSpec default_width = spec;
  default_width.set_d_ff(0);  // 4 * d_model
  CHECK(Build(default_width)->NumNonEmbeddingParams() ==
        non_embedding + 2 * (2 * d * (4 * d - d_ff) + (4 * d - d_ff)));
}

TEST_CASE("Residual projections start smaller than the other weights", "[model]") {
  torch::manual_seed(4);
  v1::ModelSpec spec = SmallSpec();
  spec.set_d_model(128);
  spec.set_d_ff(512);
  spec.set_n_layers(8);
  std::shared_ptr<CausalLM> model = Build(spec);
  for (const auto& item : model->named_parameters()) {
    if (item.value().dim() != 2) continue;
    const double std = item.value().std().item<double>();
    const bool residual = item.key().find("proj.weight") != std::string::npos;
    INFO(item.key());
    CHECK(std == Approx(residual ? 0.02 / std::sqrt(16.0) : 0.02).epsilon(0.1));
  }
}

}  // namespace
}  // namespace scalelab::model
