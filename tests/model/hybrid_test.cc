// The hybrid family: sequential (attention and Mamba-2 layers interleaved) and parallel
// (attention and SSM branches side by side in every layer).

#include "model/hybrid.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/registry.h"
#include "runspec/run_config.h"

namespace scalelab::model {
namespace {

using torch::indexing::Slice;

// A tiny hybrid; mode "sequential" or "parallel", fuse "mean" or "concat".
v1::ModelSpec HybridSpec(const std::string& mode, const std::string& fuse = "mean",
                         int n_layers = 4) {
  v1::RunConfig config;
  v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family("hybrid");
  spec.set_d_model(32);
  spec.set_n_layers(n_layers);
  spec.set_n_heads(4);
  spec.set_n_kv_heads(2);
  spec.set_seq_len(16);
  spec.mutable_ssm()->set_head_dim(8);
  spec.mutable_ssm()->set_d_state(8);
  spec.mutable_ssm()->set_chunk(8);
  spec.mutable_hybrid()->set_mode(mode);
  spec.mutable_hybrid()->set_fuse(fuse);
  spec.mutable_hybrid()->set_attn_ratio(0.5);
  runspec::ApplyRunDefaults(&config);
  return config.model();
}

std::shared_ptr<CausalLM> BuildUnseeded(const v1::ModelSpec& spec) {
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
  REQUIRE(model.ok());
  return *model;
}

std::string Kinds(int n_layers, double ratio) {
  v1::ModelSpec spec;
  spec.set_n_layers(n_layers);
  spec.mutable_hybrid()->set_attn_ratio(ratio);
  return SequentialLayerKinds(spec);
}

std::vector<v1::ModelSpec> AllModes() {
  return {HybridSpec("sequential"), HybridSpec("parallel", "mean", 2),
          HybridSpec("parallel", "concat", 2)};
}

TEST_CASE("Sequential hybrids spread attention layers evenly, last but never first",
          "[model][unit][hybrid]") {
  CHECK(Kinds(6, 1.0 / 3) == "MMAMMA");
  CHECK(Kinds(8, 0.25) == "MMMAMMMA");
  CHECK(Kinds(4, 0.5) == "MAMA");
  CHECK(Kinds(12, 1.0 / 3) == "MMAMMAMMAMMA");
  CHECK(Kinds(12, 0.25) == "MMMAMMMAMMMA");
  CHECK(Kinds(3, 1.0) == "MAA");           // at most n_layers - 1 attention layers
  CHECK(Kinds(10, 0.01) == "MMMMMMMMMA");  // at least one
  CHECK(Kinds(1, 0.25) == "A");
  for (int n_layers = 2; n_layers <= 16; ++n_layers) {
    for (double ratio : {0.1, 0.25, 0.3, 0.5, 0.75, 1.0}) {
      CAPTURE(n_layers, ratio);
      const std::string kinds = Kinds(n_layers, ratio);
      const int64_t expected = std::clamp<int64_t>(std::llround(ratio * n_layers), 1, n_layers - 1);
      CHECK(std::count(kinds.begin(), kinds.end(), 'A') == expected);
      CHECK(kinds.front() == 'M');
      CHECK(kinds.back() == 'A');
    }
  }
  v1::ModelSpec spec;
  spec.set_n_layers(3);
  spec.mutable_hybrid()->set_pattern("AMM");
  CHECK(SequentialLayerKinds(spec) == "AMM");
}

TEST_CASE("Parallel hybrids give attention a rounded share of the heads, at least one each way",
          "[model][unit][hybrid]") {
  v1::ModelSpec spec;
  spec.set_n_heads(4);
  for (const auto& [fraction, heads] : {std::pair{0.5, 2}, {0.1, 1}, {0.6, 2}, {0.9, 3}}) {
    spec.mutable_hybrid()->set_attn_fraction(fraction);
    CHECK(ParallelAttentionHeads(spec) == heads);
  }
  v1::ModelSpec one_head = HybridSpec("parallel");
  one_head.set_n_heads(1);
  one_head.set_n_kv_heads(1);
  absl::StatusOr<std::shared_ptr<CausalLM>> refused = BuildModel(one_head);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(refused.status().message().find("model.n_heads") == 0);
}

TEST_CASE("The registry builds hybrids with the layers their mode asks for",
          "[model][unit][hybrid]") {
  std::shared_ptr<CausalLM> sequential = BuildUnseeded(HybridSpec("sequential"));
  auto* hybrid = dynamic_cast<HybridImpl*>(sequential.get());
  REQUIRE(hybrid != nullptr);
  CHECK(hybrid->layer_kinds() == "MAMA");
  v1::ModelSpec patterned = HybridSpec("sequential");
  patterned.mutable_hybrid()->set_pattern("MMAA");
  CHECK(dynamic_cast<HybridImpl&>(*BuildUnseeded(patterned)).layer_kinds() == "MMAA");
  CHECK(dynamic_cast<HybridImpl&>(*BuildUnseeded(HybridSpec("parallel"))).layer_kinds() == "PPPP");
  // "mean" projects each branch to d_model, "concat" the concatenation: the same matrix sizes.
  CHECK(BuildUnseeded(HybridSpec("parallel", "mean"))->NumParams() ==
        BuildUnseeded(HybridSpec("parallel", "concat"))->NumParams());
}

TEST_CASE("Hybrid forward passes are causal and give one logit per vocabulary entry",
          "[model][unit][hybrid]") {
  for (const v1::ModelSpec& spec : AllModes()) {
    CAPTURE(spec.hybrid().mode(), spec.hybrid().fuse());
    torch::manual_seed(7);
    std::shared_ptr<CausalLM> model = BuildUnseeded(spec);
    torch::NoGradGuard no_grad;
    torch::Tensor tokens = torch::randint(0, 256, {2, 20}, torch::kLong);
    torch::Tensor before = model->forward(tokens);
    CHECK(before.sizes() == torch::IntArrayRef({2, 20, 256}));
    torch::Tensor changed = tokens.clone();
    changed.index_put_({Slice(), 11}, (tokens.index({Slice(), 11}) + 1) % 256);
    torch::Tensor after = model->forward(changed);
    CHECK(torch::allclose(before.index({Slice(), Slice(0, 11)}),
                          after.index({Slice(), Slice(0, 11)}), 0.0, 1e-6));
    CHECK_FALSE(torch::allclose(before.index({Slice(), Slice(11, 20)}),
                                after.index({Slice(), Slice(11, 20)})));
  }
}

TEST_CASE("Cached stepwise hybrid logits equal the full forward pass", "[model][unit][hybrid]") {
  for (const v1::ModelSpec& spec : AllModes()) {
    CAPTURE(spec.hybrid().mode(), spec.hybrid().fuse());
    torch::manual_seed(8);
    std::shared_ptr<CausalLM> model = BuildUnseeded(spec);
    model->eval();
    torch::NoGradGuard no_grad;
    // 21 tokens: several scan chunks of 8, a ragged last one, and past seq_len 16.
    torch::Tensor tokens = torch::randint(0, 256, {2, 21}, torch::kLong);
    torch::Tensor full = model->forward(tokens);
    InferenceState state = model->NewInferenceState(2);
    std::vector<torch::Tensor> pieces;
    absl::StatusOr<torch::Tensor> prompt = model->ForwardStep(tokens.narrow(1, 0, 6), state);
    REQUIRE(prompt.ok());
    pieces.push_back(*prompt);
    for (int64_t position = 6; position < 21; ++position) {
      absl::StatusOr<torch::Tensor> next = model->ForwardStep(tokens.narrow(1, position, 1), state);
      REQUIRE(next.ok());
      pieces.push_back(*next);
    }
    CHECK(state.position == 21);
    CHECK(torch::allclose(torch::cat(pieces, 1), full, 0.0, 1e-4));
    CHECK(model->ForwardStep(tokens, state).ok());  // a second prompt continues the sequence
    CHECK(model->ForwardStep(torch::zeros({3, 1}, torch::kLong), state).status().code() ==
          absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("Every hybrid parameter is in exactly one group", "[model][unit][hybrid]") {
  for (const v1::ModelSpec& spec : AllModes()) {
    CAPTURE(spec.hybrid().mode(), spec.hybrid().fuse());
    std::shared_ptr<CausalLM> model = BuildUnseeded(spec);
    ParamGroups groups = model->ParameterGroups();
    std::multiset<const void*> seen;
    for (const torch::Tensor& parameter : groups.decay) {
      CHECK(parameter.dim() == 2);
      seen.insert(parameter.unsafeGetTensorImpl());
    }
    for (const torch::Tensor& parameter : groups.no_decay) {
      seen.insert(parameter.unsafeGetTensorImpl());
    }
    std::vector<torch::Tensor> parameters = model->parameters();
    CHECK(seen.size() == parameters.size());
    for (const torch::Tensor& parameter : parameters) {
      CHECK(seen.count(parameter.unsafeGetTensorImpl()) == 1);
    }
    CHECK(model->NumNonEmbeddingParams() == model->NumParams() - 256 * 32);
  }
}

}  // namespace
}  // namespace scalelab::model
