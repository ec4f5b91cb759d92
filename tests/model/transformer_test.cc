#include "model/transformer.h"

#include <catch2/catch.hpp>
#include <cmath>

namespace scalelab::model {
namespace {

TransformerConfig SmallConfig() {
  TransformerConfig config;
  config.d_model = 32;
  config.n_layers = 2;
  config.n_heads = 4;
  config.seq_len = 16;
  config.d_ff = 64;
  return config;
}

TEST_CASE("The forward pass gives one logit per vocabulary entry at every position", "[model]") {
  torch::manual_seed(0);
  Transformer model(SmallConfig());
  torch::Tensor tokens = torch::randint(0, 256, {3, 16}, torch::kLong);
  torch::Tensor logits = model->forward(tokens);
  CHECK(logits.sizes() == torch::IntArrayRef({3, 16, 256}));
  // Shorter contexts than seq_len work too.
  CHECK(model->forward(tokens.narrow(1, 0, 5)).sizes() == torch::IntArrayRef({3, 5, 256}));
}

TEST_CASE("An untrained model predicts close to uniform bytes", "[model]") {
  torch::manual_seed(1);
  Transformer model(SmallConfig());
  torch::Tensor inputs = torch::randint(0, 256, {8, 16}, torch::kLong);
  torch::Tensor targets = torch::randint(0, 256, {8, 16}, torch::kLong);
  const double loss = model->Loss(inputs, targets).item<double>();
  CHECK(loss == Approx(std::log(256.0)).margin(0.3));
}

TEST_CASE("Changing a future token leaves earlier logits unchanged", "[model]") {
  torch::manual_seed(2);
  Transformer model(SmallConfig());
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = torch::randint(0, 256, {2, 16}, torch::kLong);
  torch::Tensor changed = tokens.clone();
  changed.index_put_({torch::indexing::Slice(), 10},
                     (tokens.index({torch::indexing::Slice(), 10}) + 1) % 256);
  torch::Tensor before = model->forward(tokens);
  torch::Tensor after = model->forward(changed);
  using torch::indexing::Slice;
  CHECK(torch::equal(before.index({Slice(), Slice(0, 10)}), after.index({Slice(), Slice(0, 10)})));
  CHECK_FALSE(torch::allclose(before.index({Slice(), Slice(10, 16)}),
                              after.index({Slice(), Slice(10, 16)})));
}

TEST_CASE("Parameter counts separate the embeddings and the decay groups", "[model]") {
  TransformerConfig config = SmallConfig();
  Transformer model(config);
  const int64_t d = config.d_model;
  const int64_t per_block = 2 * 2 * d                                 // two LayerNorms
                            + d * 3 * d + 3 * d                       // qkv
                            + d * d + d                               // attention projection
                            + d * config.d_ff + config.d_ff           // fc
                            + config.d_ff * d + d;                    // fc_proj
  const int64_t non_embedding = config.n_layers * per_block + 2 * d;  // + final LayerNorm
  CHECK(model->NumNonEmbeddingParams() == non_embedding);
  CHECK(model->NumParams() == non_embedding + 256 * d + config.seq_len * d);

  std::vector<torch::Tensor> decay;
  std::vector<torch::Tensor> no_decay;
  model->SplitForWeightDecay(decay, no_decay);
  CHECK(decay.size() == static_cast<size_t>(4 * config.n_layers));  // qkv, proj, fc, fc_proj
  CHECK(decay.size() + no_decay.size() == model->parameters().size());
  for (const torch::Tensor& weight : decay) CHECK(weight.dim() == 2);
}

TEST_CASE("Residual projections start smaller than the other weights", "[model]") {
  torch::manual_seed(3);
  TransformerConfig config = SmallConfig();
  config.d_model = 128;
  config.d_ff = 512;
  config.n_layers = 8;
  Transformer model(config);
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
