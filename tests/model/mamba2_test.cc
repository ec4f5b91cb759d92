// The Mamba-2 mixer and the "mamba2" family through the CausalLM interface.

#include "model/mamba2.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <vector>

#include "model/causal_lm.h"
#include "model/ops.h"
#include "model/ssd.h"

namespace scalelab::model {
namespace {

using torch::indexing::Slice;

v1::ModelSpec TinySpec() {
  v1::ModelSpec spec;
  spec.set_family("mamba2");
  spec.set_vocab_size(32);
  spec.set_d_model(16);
  spec.set_n_layers(2);
  spec.set_seq_len(32);
  v1::SsmSpec& ssm = *spec.mutable_ssm();
  ssm.set_d_state(8);
  ssm.set_head_dim(8);
  ssm.set_expand(2);
  ssm.set_d_conv(4);
  ssm.set_chunk(8);
  return spec;
}

TEST_CASE("Mamba2OptionsFor rounds the inner width up to whole heads", "[model][unit][mamba2]") {
  v1::ModelSpec spec = TinySpec();
  Mamba2Options options = Mamba2OptionsFor(spec, 16);
  CHECK(options.d_input == 16);
  CHECK(options.d_inner == 32);
  CHECK(options.d_output == 16);
  CHECK(options.n_layers == 2);
  CHECK(options.chunk == 8);
  // 2 * 20 = 40 channels are 5 heads of 8; 2 * 21 = 42 rounds up to 6 heads.
  CHECK(Mamba2OptionsFor(spec, 20).d_inner == 40);
  CHECK(Mamba2OptionsFor(spec, 21).d_inner == 48);
}

TEST_CASE("The mixer maps [B,T,d_input] to its output width and starts at the reference init",
          "[model][unit][mamba2]") {
  torch::manual_seed(0);
  Mamba2Options options = Mamba2OptionsFor(TinySpec(), 16);
  Mamba2Mixer with_out(options);
  CHECK(with_out->OutputWidth() == 16);
  CHECK(with_out->forward(torch::randn({2, 11, 16})).sizes() == torch::IntArrayRef({2, 11, 16}));
  options.d_output = 0;
  Mamba2Mixer without_out(options);
  CHECK(without_out->OutputWidth() == 32);
  CHECK(without_out->forward(torch::randn({2, 11, 16})).sizes() == torch::IntArrayRef({2, 11, 32}));
  CHECK_FALSE(without_out->out_proj.defined());

  // A = -exp(a_log) in [-16, -1]; softplus(dt_bias) in [1e-3, 1e-1]; D = 1.
  CHECK(with_out->a_log.min().item<double>() >= 0.0);
  CHECK(with_out->a_log.max().item<double>() <= std::log(16.0) + 1e-6);
  torch::Tensor dt = torch::softplus(with_out->dt_bias);
  CHECK(dt.min().item<double>() >= 1e-3 * (1 - 1e-4));
  CHECK(dt.max().item<double>() <= 1e-1 * (1 + 1e-4));
  CHECK(torch::equal(with_out->d_skip, torch::ones({4})));
  CHECK(with_out->conv_weight.sizes() == torch::IntArrayRef({32 + 16, 1, 4}));
  CHECK(with_out->conv_weight.abs().max().item<double>() <= 0.5);
}

TEST_CASE("The mamba2 forward pass equals a prompt followed by recurrent steps",
          "[model][unit][mamba2]") {
  torch::manual_seed(1);
  std::shared_ptr<CausalLM> model = BuildMamba2(TinySpec());
  model->eval();
  torch::Tensor tokens = torch::randint(0, 32, {2, 29}, torch::kLong);
  torch::Tensor full;
  {
    torch::NoGradGuard no_grad;
    full = model->forward(tokens);
  }
  REQUIRE(full.sizes() == torch::IntArrayRef({2, 29, 32}));

  // A 10-token prompt (chunked scan, ragged), single steps, then a 6-token piece continuing
  // from the cached state (chunked scan with an initial state), then single steps again.
  InferenceState state = model->NewInferenceState(2);
  std::vector<torch::Tensor> pieces;
  int64_t position = 0;
  for (const int64_t length : {10, 1, 1, 1, 6, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}) {
    absl::StatusOr<torch::Tensor> logits =
        model->ForwardStep(tokens.index({Slice(), Slice(position, position + length)}), state);
    REQUIRE(logits.ok());
    pieces.push_back(*logits);
    position += length;
  }
  REQUIRE(position == 29);
  CHECK(state.position == 29);
  CHECK(state.layers[0].conv_state.sizes() == torch::IntArrayRef({2, 48, 3}));
  CHECK(state.layers[0].ssm_state.sizes() == torch::IntArrayRef({2, 4, 8, 8}));
  CHECK(torch::allclose(torch::cat(pieces, 1), full, 1e-4, 1e-5));
}

TEST_CASE("A mamba2 position never sees later tokens", "[model][unit][mamba2]") {
  torch::manual_seed(2);
  std::shared_ptr<CausalLM> model = BuildMamba2(TinySpec());
  torch::NoGradGuard no_grad;
  torch::Tensor tokens = torch::randint(0, 32, {1, 24}, torch::kLong);
  torch::Tensor changed = tokens.clone();
  changed.index_put_({0, 13}, (tokens.index({0, 13}) + 1) % 32);
  torch::Tensor before = model->forward(tokens);
  torch::Tensor after = model->forward(changed);
  CHECK(torch::equal(before.index({Slice(), Slice(0, 13)}), after.index({Slice(), Slice(0, 13)})));
  CHECK_FALSE(torch::allclose(before.index({Slice(), 13}), after.index({Slice(), 13})));
}

TEST_CASE("Gradients reach the SSM parameters and a few steps fit a repeated batch",
          "[model][unit][mamba2]") {
  torch::manual_seed(3);
  std::shared_ptr<CausalLM> model = BuildMamba2(TinySpec());
  // Each token is followed by itself + 5 (mod 32): learnable from the current token alone.
  torch::Tensor starts = torch::randint(0, 32, {4, 1}, torch::kLong);
  torch::Tensor batch = (starts + 5 * torch::arange(33, torch::kLong).unsqueeze(0)) % 32;
  torch::Tensor inputs = batch.index({Slice(), Slice(0, 32)});
  torch::Tensor targets = batch.index({Slice(), Slice(1, 33)});

  model->Loss(inputs, targets).backward();
  for (const auto& item : model->named_parameters()) {
    CAPTURE(item.key());
    REQUIRE(item.value().grad().defined());
    CHECK(item.value().grad().abs().sum().item<double>() > 0.0);
  }

  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0.0, last = 0.0;
  for (int step = 0; step < 25; ++step) {
    optimizer.zero_grad();
    torch::Tensor loss = model->Loss(inputs, targets);
    loss.backward();
    optimizer.step();
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  CAPTURE(first, last);
  CHECK(std::isfinite(last));
  CHECK(last < 0.5 * first);
}

TEST_CASE("mamba2 FLOPs per token equal 6 x the multiply-adds a forward pass counts",
          "[model][unit][mamba2]") {
  for (const int64_t seq_len : {32, 20, 5}) {
    CAPTURE(seq_len);
    v1::ModelSpec spec = TinySpec();
    spec.set_seq_len(static_cast<int32_t>(seq_len));
    torch::manual_seed(4);
    std::shared_ptr<CausalLM> model = BuildMamba2(spec);
    ops::MacCounter counter;
    torch::NoGradGuard no_grad;
    model->forward(torch::randint(0, 32, {3, seq_len}, torch::kLong));
    const double counted = 6.0 * static_cast<double>(counter.macs()) / (3.0 * seq_len);
    CHECK(model->FlopsPerToken() == Approx(counted).epsilon(1e-12));
  }
  // The closed form by hand for seq_len 32, chunk 8: in_proj 16 * (32 + 48 + 4), conv 48 * 4,
  // out_proj 32 * 16, scan 4 chunks of (8*8*8 + 4*8*8*8 + 2*4*8*8*8 + 4*8*8) over 32 tokens, per
  // layer; the tied head 32 * 16.
  const double scan = 4.0 * (8 * 8 * 8 + 4 * 8 * 8 * 8 + 2 * 4 * 8 * 8 * 8 + 4 * 8 * 8) / 32.0;
  const double per_layer = 16 * (32 + 48 + 4) + 48 * 4 + 32 * 16 + scan;
  CHECK(BuildMamba2(TinySpec())->FlopsPerToken() == Approx(6.0 * (2 * per_layer + 32 * 16)));
}

TEST_CASE("mamba2 counts every parameter but the embedding and decays only the projections",
          "[model][unit][mamba2]") {
  std::shared_ptr<CausalLM> model = BuildMamba2(TinySpec());
  CHECK(model->NumNonEmbeddingParams() == model->NumParams() - 32 * 16);
  // Per layer: block norm 16, in_proj 84 * 16, conv 48 * 4 + 48, A_log, dt_bias, D 3 * 4, gated
  // norm 32, out_proj 16 * 32; then the final norm 16.
  const int64_t per_layer = 16 + 84 * 16 + 48 * 4 + 48 + 3 * 4 + 32 + 16 * 32;
  CHECK(model->NumNonEmbeddingParams() == 2 * per_layer + 16);
  ParamGroups groups = model->ParameterGroups();
  CHECK(groups.decay.size() == 4);  // in_proj and out_proj of 2 layers
  for (const torch::Tensor& weight : groups.decay) CHECK(weight.dim() == 2);
  CHECK(groups.decay.size() + groups.no_decay.size() == model->parameters().size());
  CHECK(model->MaxSeqLen() == 65536);
}

TEST_CASE("mamba2 ForwardStep refuses a wrong batch and a request past the cap",
          "[model][unit][mamba2]") {
  std::shared_ptr<CausalLM> model = BuildMamba2(TinySpec());
  InferenceState state = model->NewInferenceState(2);
  absl::StatusOr<torch::Tensor> wrong_batch =
      model->ForwardStep(torch::zeros({3, 1}, torch::kLong), state);
  CHECK(wrong_batch.status().code() == absl::StatusCode::kInvalidArgument);
  state.position = 65535;
  CHECK(model->ForwardStep(torch::zeros({2, 1}, torch::kLong), state).ok());
  absl::StatusOr<torch::Tensor> past_cap =
      model->ForwardStep(torch::zeros({2, 1}, torch::kLong), state);
  CHECK(past_cap.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(state.position == 65536);
}

}  // namespace
}  // namespace scalelab::model
