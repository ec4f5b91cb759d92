// ForeachAdamW against torch::optim::AdamW as MakeAdamW sets it up: the same parameters after
// several steps on the same gradients.

#include "model/foreach_adamw.h"

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <memory>

#include "model/causal_lm.h"
#include "model/optimizer.h"
#include "model/registry.h"
#include "runspec/run_config.h"

namespace scalelab::model {
namespace {

std::shared_ptr<CausalLM> SmallTransformer() {
  scalelab::v1::RunConfig config;
  scalelab::v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family("transformer");
  spec.set_d_model(32);
  spec.set_n_layers(2);
  spec.set_n_heads(2);
  spec.set_seq_len(16);
  spec.set_vocab_size(64);
  runspec::ApplyRunDefaults(&config);
  torch::manual_seed(3);
  absl::StatusOr<std::shared_ptr<CausalLM>> built = BuildModel(spec);
  REQUIRE(built.ok());
  return *built;
}

TEST_CASE("ForeachAdamW makes the updates of torch::optim::AdamW", "[model][unit][optimizer]") {
  std::shared_ptr<CausalLM> ours = SmallTransformer();
  std::shared_ptr<CausalLM> theirs = SmallTransformer();
  ForeachAdamW foreach_adamw(*ours, 1e-2, 0.1);
  std::unique_ptr<torch::optim::AdamW> adamw = MakeAdamW(*theirs, 1e-2, 0.1);
  torch::manual_seed(4);
  const torch::Tensor tokens = torch::randint(64, {4, 17});
  const torch::Tensor inputs = tokens.narrow(1, 0, 16);
  const torch::Tensor targets = tokens.narrow(1, 1, 16);
  for (int step = 0; step < 5; ++step) {
    foreach_adamw.zero_grad();
    ours->Loss(inputs, targets).backward();
    foreach_adamw.step();
    adamw->zero_grad();
    theirs->Loss(inputs, targets).backward();
    adamw->step();
  }
  const std::vector<torch::Tensor> a = ours->parameters();
  const std::vector<torch::Tensor> b = theirs->parameters();
  REQUIRE(a.size() == b.size());
  double moved = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("parameter " << i << " of shape " << a[i].sizes());
    CHECK(torch::allclose(a[i], b[i], /*rtol=*/1e-5, /*atol=*/1e-7));
  }
  // And the step did something: the parameters are not where a fresh model has them.
  const std::vector<torch::Tensor> fresh = SmallTransformer()->parameters();
  for (size_t i = 0; i < a.size(); ++i) moved += (a[i] - fresh[i]).abs().max().item<double>();
  CHECK(moved > 1e-3);
}

}  // namespace
}  // namespace scalelab::model
