// FlopsPerToken of every family against what one forward pass computes: the closed-form formula
// must equal 6 x the multiply-adds ops::MacCounter counts per token over a full context.

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/ops.h"
#include "model/registry.h"
#include "runspec/run_config.h"

namespace scalelab::model {
namespace {

v1::ModelSpec Spec(const std::string& family, const std::string& mode = "",
                   const std::string& fuse = "") {
  v1::RunConfig config;
  v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family(family);
  spec.set_d_model(32);
  spec.set_n_layers(3);
  spec.set_n_heads(4);
  spec.set_n_kv_heads(2);
  // Not a multiple of the scan chunk: the padded last chunk is counted too.
  spec.set_seq_len(24);
  spec.set_vocab_size(300);
  if (family != "transformer") {
    spec.mutable_ssm()->set_head_dim(8);
    spec.mutable_ssm()->set_d_state(8);
    spec.mutable_ssm()->set_chunk(16);
  }
  if (family == "hybrid") {
    spec.mutable_hybrid()->set_mode(mode);
    spec.mutable_hybrid()->set_fuse(fuse);
  }
  runspec::ApplyRunDefaults(&config);
  return config.model();
}

TEST_CASE("FlopsPerToken is 6 x the counted forward multiply-adds per token at full context",
          "[model][unit][flops]") {
  const std::vector<v1::ModelSpec> specs = {
      Spec("transformer"),
      Spec("mamba2"),
      Spec("hybrid", "sequential", "mean"),
      Spec("hybrid", "parallel", "mean"),
      Spec("hybrid", "parallel", "concat"),
  };
  for (const v1::ModelSpec& spec : specs) {
    CAPTURE(spec.family(), spec.hybrid().mode(), spec.hybrid().fuse());
    torch::manual_seed(9);
    absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
    REQUIRE(model.ok());
    torch::Tensor tokens = torch::randint(0, 300, {2, spec.seq_len()}, torch::kLong);
    ops::MacCounter counter;
    (*model)->forward(tokens);
    REQUIRE(counter.macs() > 0);
    const double expected = 6.0 * static_cast<double>(counter.macs()) / (2.0 * spec.seq_len());
    CHECK((*model)->FlopsPerToken() == Approx(expected).epsilon(1e-9));
  }
}

TEST_CASE("Transformer FLOPs grow with context only through the attention window",
          "[model][unit][flops]") {
  // Closed form at d 32, 3 layers, 4 heads of 8, 2 kv heads, SwiGLU hidden 88, vocab 300:
  // per layer 32 * 64 (qkv) + 32 * 32 (out) + 3 * 32 * 88 (SwiGLU) + 2 * T * 32 (scores, values).
  v1::ModelSpec spec = Spec("transformer");
  for (int seq_len : {24, 48}) {
    spec.set_seq_len(seq_len);
    absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec);
    REQUIRE(model.ok());
    const double per_layer = 32 * 64 + 32 * 32 + 3 * 32 * 88 + 2.0 * seq_len * 32;
    CHECK((*model)->FlopsPerToken() == 6.0 * (3 * per_layer + 32 * 300));
  }
}

}  // namespace
}  // namespace scalelab::model
