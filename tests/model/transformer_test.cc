// The transformer family (Llama layout) through the CausalLM interface and the registry, and the
// parts it is made of (RMSNorm, SwiGLU, rotary grouped-query attention).

#include "model/transformer.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/parts.h"
#include "model/registry.h"
#include "runspec/run_config.h"

namespace scalelab::model {
namespace {

using torch::indexing::Slice;

v1::ModelSpec SmallSpec(int n_kv_heads = 0) {
  v1::RunConfig config;
  v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family("transformer");
  spec.set_d_model(32);
  spec.set_n_layers(2);
  spec.set_n_heads(4);
  spec.set_n_kv_heads(n_kv_heads);
  spec.set_seq_len(16);
  runspec::ApplyRunDefaults(&config);
  return config.model();
}

std::shared_ptr<CausalLM> Build(const v1::ModelSpec& spec) {
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
  REQUIRE(model.ok());
  return *model;
}

// Logits of `tokens` fed through ForwardStep: a prompt of `prompt` tokens, then one at a time.
torch::Tensor Stepwise(CausalLM& model, const torch::Tensor& tokens, int64_t prompt) {
  InferenceState state = model.NewInferenceState(tokens.size(0));
  std::vector<torch::Tensor> pieces;
  absl::StatusOr<torch::Tensor> first = model.ForwardStep(tokens.narrow(1, 0, prompt), state);
  REQUIRE(first.ok());
  pieces.push_back(*first);
  for (int64_t position = prompt; position < tokens.size(1); ++position) {
    absl::StatusOr<torch::Tensor> next = model.ForwardStep(tokens.narrow(1, position, 1), state);
    REQUIRE(next.ok());
    pieces.push_back(*next);
  }
  CHECK(state.position == tokens.size(1));
  return torch::cat(pieces, /*dim=*/1);
}

TEST_CASE("The registry builds every family and refuses unknown families by name",
          "[model][unit][transformer]") {
  CHECK(RegisteredFamilies() == std::vector<std::string>{"hybrid", "mamba2", "transformer"});
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  CHECK(std::dynamic_pointer_cast<TransformerImpl>(model) != nullptr);
  CHECK(model->MaxSeqLen() == kRotaryMaxSeqLen);

  v1::ModelSpec mamba = SmallSpec();
  mamba.set_family("mamba");
  absl::StatusOr<std::shared_ptr<CausalLM>> refused = BuildModel(mamba);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(refused.status().message() ==
        "model.family: expected one of \"hybrid\", \"mamba2\", \"transformer\", got \"mamba\"");
}

TEST_CASE("The SwiGLU width is 8/3 d_model rounded up to a multiple of 8 unless d_ff is set",
          "[model][unit][transformer]") {
  v1::ModelSpec spec;
  for (const auto& [d_model, hidden] : {std::pair{64, 176}, {128, 344}, {256, 688}, {32, 88}}) {
    spec.set_d_model(d_model);
    CHECK(SwiGluHidden(spec) == hidden);
  }
  spec.set_d_ff(100);
  CHECK(SwiGluHidden(spec) == 100);
}

TEST_CASE("The forward pass gives one logit per vocabulary entry, also beyond seq_len",
          "[model][unit][transformer]") {
  torch::manual_seed(0);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  torch::Tensor tokens = torch::randint(0, 256, {3, 16}, torch::kLong);
  CHECK(model->forward(tokens).sizes() == torch::IntArrayRef({3, 16, 256}));
  CHECK(model->forward(tokens.narrow(1, 0, 5)).sizes() == torch::IntArrayRef({3, 5, 256}));
  // RoPE has no trained length limit: contexts past model.seq_len run (long-context evaluation).
  torch::Tensor longer = torch::randint(0, 256, {1, 40}, torch::kLong);
  CHECK(model->forward(longer).sizes() == torch::IntArrayRef({1, 40, 256}));
}

TEST_CASE("An untrained transformer predicts close to uniform bytes",
          "[model][unit][transformer]") {
  torch::manual_seed(1);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  torch::Tensor inputs = torch::randint(0, 256, {8, 16}, torch::kLong);
  torch::Tensor targets = torch::randint(0, 256, {8, 16}, torch::kLong);
  CHECK(model->Loss(inputs, targets).item<double>() == Approx(std::log(256.0)).margin(0.3));
}

TEST_CASE("Changing a future token leaves earlier transformer logits unchanged",
          "[model][unit][transformer]") {
  torch::manual_seed(2);
  std::shared_ptr<CausalLM> model = Build(SmallSpec(/*n_kv_heads=*/2));
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

TEST_CASE("Transformer logits depend on token order, not only on the bag of tokens",
          "[model][unit][transformer]") {
  // Without a position embedding only RoPE tells positions apart; a broken rotation would make
  // the last logits invariant to swapping two earlier tokens.
  torch::manual_seed(3);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = torch::randint(0, 256, {1, 8}, torch::kLong);
  tokens.index_put_({0, 2}, 7);
  tokens.index_put_({0, 5}, 9);
  torch::Tensor swapped = tokens.clone();
  swapped.index_put_({0, 2}, 9);
  swapped.index_put_({0, 5}, 7);
  CHECK_FALSE(torch::allclose(model->forward(tokens).index({0, 7}),
                              model->forward(swapped).index({0, 7}), 0.0, 1e-6));
}

TEST_CASE("Cached stepwise logits equal the full forward pass, with and without GQA",
          "[model][unit][transformer]") {
  for (int n_kv_heads : {4, 2, 1}) {
    CAPTURE(n_kv_heads);
    torch::manual_seed(4);
    std::shared_ptr<CausalLM> model = Build(SmallSpec(n_kv_heads));
    model->eval();
    // 24 tokens: the steps run past model.seq_len (16).
    torch::Tensor tokens = torch::randint(0, 256, {2, 24}, torch::kLong);
    torch::NoGradGuard no_grad;
    torch::Tensor full = model->forward(tokens);
    CHECK(torch::allclose(Stepwise(*model, tokens, /*prompt=*/5), full, 0.0, 1e-5));
    CHECK(torch::allclose(Stepwise(*model, tokens, /*prompt=*/1), full, 0.0, 1e-5));
  }
}

TEST_CASE("ForwardStep refuses a wrong batch and a context past MaxSeqLen, leaving the state",
          "[model][unit][transformer]") {
  torch::manual_seed(5);
  std::shared_ptr<CausalLM> model = Build(SmallSpec());
  InferenceState state = model->NewInferenceState(2);
  absl::StatusOr<torch::Tensor> wrong_batch =
      model->ForwardStep(torch::zeros({3, 1}, torch::kLong), state);
  CHECK(wrong_batch.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(state.position == 0);

  state.position = model->MaxSeqLen() - 1;
  absl::StatusOr<torch::Tensor> too_long =
      model->ForwardStep(torch::zeros({2, 2}, torch::kLong), state);
  CHECK(too_long.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(state.position == model->MaxSeqLen() - 1);
  CHECK_FALSE(state.layers[0].keys.defined());
}

TEST_CASE("Grouped-query attention has fewer parameters and the count follows the layout",
          "[model][unit][transformer]") {
  // d 32, 4 heads of 8, SwiGLU hidden 88, 2 layers: per layer the qkv matrix (4 + 2 kv) * 8 x 32,
  // the out projection 32 x 32, three SwiGLU matrices 88 x 32 and two norm gains; then the final
  // norm. The token embedding (256 x 32, tied head) is not counted.
  int64_t previous = 0;
  for (int n_kv_heads : {1, 2, 4}) {
    CAPTURE(n_kv_heads);
    std::shared_ptr<CausalLM> model = Build(SmallSpec(n_kv_heads));
    const int64_t per_layer = (4 + 2 * n_kv_heads) * 8 * 32 + 32 * 32 + 3 * 88 * 32 + 2 * 32;
    CHECK(model->NumNonEmbeddingParams() == 2 * per_layer + 32);
    CHECK(model->NumParams() == model->NumNonEmbeddingParams() + 256 * 32);
    CHECK(model->NumNonEmbeddingParams() > previous);
    previous = model->NumNonEmbeddingParams();
  }
}

TEST_CASE("Every transformer parameter is in exactly one group; only block matrices decay",
          "[model][unit][transformer]") {
  std::shared_ptr<CausalLM> model = Build(SmallSpec(2));
  ParamGroups groups = model->ParameterGroups();
  std::set<const void*> decay;
  std::set<const void*> no_decay;
  for (const torch::Tensor& parameter : groups.decay) {
    CHECK(parameter.dim() == 2);
    decay.insert(parameter.data_ptr());
  }
  for (const torch::Tensor& parameter : groups.no_decay) no_decay.insert(parameter.data_ptr());
  CHECK(decay.size() == groups.decay.size());
  CHECK(no_decay.size() == groups.no_decay.size());
  // 5 matrices per layer (qkv, out, w_gate, w_up, w_down); the embedding, 2 gains per layer and
  // the final gain do not decay.
  CHECK(groups.decay.size() == 2 * 5);
  CHECK(groups.no_decay.size() == 1 + 2 * 2 + 1);
  for (const torch::Tensor& parameter : model->parameters()) {
    const void* ptr = parameter.data_ptr();
    CHECK(decay.count(ptr) + no_decay.count(ptr) == 1);
  }
}

TEST_CASE("Transformer init: N(0, 0.02), residual projections scaled by depth, gains 1",
          "[model][unit][transformer]") {
  torch::manual_seed(6);
  v1::ModelSpec spec = SmallSpec();
  spec.set_n_layers(8);
  TransformerImpl model(spec);
  const auto& block = model.named_modules(/*name_prefix=*/"", /*include_self=*/false)["blocks.0"]
                          ->as<TransformerBlockImpl>();
  REQUIRE(block != nullptr);
  CHECK(block->attn->qkv_weight.std().item<double>() == Approx(0.02).epsilon(0.1));
  CHECK(block->mlp->w_gate.std().item<double>() == Approx(0.02).epsilon(0.1));
  CHECK(block->attn->out_weight.std().item<double>() == Approx(0.02 / 4).epsilon(0.1));
  CHECK(block->mlp->w_down.std().item<double>() == Approx(0.02 / 4).epsilon(0.1));
  CHECK(torch::equal(block->attn_norm->weight, torch::ones({32})));
}

TEST_CASE("RMSNorm gives unit root-mean-square rows scaled by the gain",
          "[model][unit][transformer]") {
  RmsNorm norm(4);
  torch::Tensor x = torch::tensor({{3.0f, -3.0f, 3.0f, -3.0f}, {1.0f, 2.0f, 3.0f, 4.0f}});
  torch::Tensor y = norm(x);
  CHECK(torch::allclose(y.pow(2).mean(-1), torch::ones({2}), 0.0, 1e-4));
  CHECK(torch::allclose(y[0], torch::tensor({1.0f, -1.0f, 1.0f, -1.0f}), 0.0, 1e-5));
  {
    torch::NoGradGuard no_grad;
    norm->weight.fill_(2.0);
  }
  CHECK(torch::allclose(norm(x), 2 * y, 0.0, 1e-6));
}

}  // namespace
}  // namespace scalelab::model
