#include "model/layer_norm.h"

#include <catch2/catch.hpp>

namespace scalelab::model {
namespace {

TEST_CASE("The LayerNorm wrapper equals torch::layer_norm on the CPU", "[model]") {
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({3, 7, 48}) * 4 + 2;
  torch::Tensor weight = torch::randn({48});
  torch::Tensor bias = torch::randn({48});
  CHECK_FALSE(LayerNormUsesKernel(x, weight, bias));
  torch::Tensor expected = torch::layer_norm(x, {48}, weight, bias, 1e-5);
  CHECK(torch::equal(LayerNormForward(x, weight, bias, 1e-5), expected));

  // Through a module's parameters, with gradients flowing as before.
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({48}));
  torch::Tensor out = ApplyLayerNorm(*norm, x);
  CHECK(torch::equal(out, norm->forward(x)));
  out.sum().backward();
  CHECK(norm->weight.grad().defined());
}

}  // namespace
}  // namespace scalelab::model
