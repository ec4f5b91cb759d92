// The fused CPU ops (model/ops_cpu.h) against ops::reference: outputs and every input gradient,
// with the reference's own autograd as the truth; and the dispatcher's routing and MAC counts.
#include "model/ops.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/ops_cpu.h"

namespace scalelab::model {
namespace {

using Op = std::function<torch::Tensor(const std::vector<torch::Tensor>&)>;

// max |actual - expected| <= 1e-5 * max(1, max |expected|): relative to the tensor's scale, so
// that entries near zero (e.g. masked probabilities' gradients) are not held to 1e-5 of
// themselves.
void CheckClose(const torch::Tensor& actual, const torch::Tensor& expected,
                const std::string& what) {
  INFO(what);
  REQUIRE(actual.defined());
  REQUIRE(actual.sizes() == expected.sizes());
  const double scale = std::max(1.0, expected.abs().max().item<double>());
  const double error = (actual - expected).abs().max().item<double>();
  INFO("max abs error " << error << " at scale " << scale);
  CHECK(error <= 1e-5 * scale);
}

// Runs both ops on copies of `inputs` (the first `n_grad` of them trainable), backpropagates the
// same random upstream gradient and compares the outputs and input gradients.
void CompareWithReference(const Op& fused, const Op& reference,
                          const std::vector<torch::Tensor>& inputs, size_t n_grad) {
  auto run = [&](const Op& op) {
    std::vector<torch::Tensor> leaves;
    for (size_t i = 0; i < inputs.size(); ++i) {
      leaves.push_back(inputs[i].clone().requires_grad_(i < n_grad));
    }
    torch::Tensor out = op(leaves);
    torch::manual_seed(99);
    out.backward(torch::randn_like(out));
    std::vector<torch::Tensor> results = {out.detach()};
    for (size_t i = 0; i < n_grad; ++i) results.push_back(leaves[i].grad());
    return results;
  };
  const std::vector<torch::Tensor> got = run(fused);
  const std::vector<torch::Tensor> want = run(reference);
  CheckClose(got[0], want[0], "output");
  for (size_t i = 1; i < want.size(); ++i) {
    CheckClose(got[i], want[i], "gradient of input " + std::to_string(i - 1));
  }
}

TEST_CASE("fused RMSNorm matches the reference in output, dx and dweight", "[model][unit][ops]") {
  torch::manual_seed(1);
  for (int64_t d : {16, 33}) {
    INFO("d " << d);
    const Op fused = [](const auto& in) { return ops::cpu::RmsNorm(in[0], in[1], 1e-5); };
    const Op reference = [](const auto& in) { return ops::reference::RmsNorm(in[0], in[1], 1e-5); };
    CompareWithReference(fused, reference, {torch::randn({3, 5, d}), torch::rand({d}) + 0.5}, 2);
  }
}

TEST_CASE("fused rotary embedding matches the reference forward and backward",
          "[model][unit][ops]") {
  torch::manual_seed(2);
  for (int64_t time : {1, 7}) {
    INFO("T " << time);
    torch::Tensor cos;
    torch::Tensor sin;
    ops::RotaryTables(/*first=*/3, time, /*head_dim=*/10, 10000.0, torch::kCPU, &cos, &sin);
    const Op fused = [&](const auto& in) { return ops::cpu::ApplyRotary(in[0], cos, sin); };
    const Op reference = [&](const auto& in) {
      return ops::reference::ApplyRotary(in[0], cos, sin);
    };
    CompareWithReference(fused, reference, {torch::randn({2, 3, time, 10})}, 1);
  }
}

TEST_CASE("fused causal attention matches the reference for GQA, cached decoding and T = 1",
          "[model][unit][ops]") {
  torch::manual_seed(3);
  struct Shape {
    int64_t heads, kv_heads, time, past, head_dim;
  };
  const std::vector<Shape> shapes = {
      {2, 2, 16, 0, 8}, {4, 2, 13, 0, 8},  {4, 1, 16, 0, 5},
      {4, 4, 5, 11, 8}, {8, 2, 5, 11, 12}, {4, 1, 1, 20, 8},
  };
  for (const Shape& shape : shapes) {
    INFO("H " << shape.heads << " Hkv " << shape.kv_heads << " T " << shape.time << " past "
              << shape.past << " hd " << shape.head_dim);
    const int64_t total = shape.past + shape.time;
    const int64_t past = shape.past;
    const Op fused = [past](const auto& in) {
      return ops::cpu::CausalAttention(in[0], in[1], in[2], past);
    };
    const Op reference = [past](const auto& in) {
      return ops::reference::CausalAttention(in[0], in[1], in[2], past);
    };
    CompareWithReference(fused, reference,
                         {torch::randn({3, shape.heads, shape.time, shape.head_dim}),
                          torch::randn({3, shape.kv_heads, total, shape.head_dim}),
                          torch::randn({3, shape.kv_heads, total, shape.head_dim})},
                         3);
  }
}

TEST_CASE("fused causal attention matches the reference across several query blocks",
          "[model][unit][ops]") {
  torch::manual_seed(8);
  // T beyond one 64-query block (and not a multiple of it), with and without a cache and GQA:
  // every block reads only the keys up to its last query.
  struct Shape {
    int64_t heads, kv_heads, time, past;
  };
  for (const Shape& shape : std::vector<Shape>{{2, 2, 150, 0}, {4, 2, 70, 9}, {2, 1, 128, 0}}) {
    INFO("H " << shape.heads << " Hkv " << shape.kv_heads << " T " << shape.time << " past "
              << shape.past);
    const int64_t total = shape.past + shape.time;
    const int64_t past = shape.past;
    const Op fused = [past](const auto& in) {
      return ops::cpu::CausalAttention(in[0], in[1], in[2], past);
    };
    const Op reference = [past](const auto& in) {
      return ops::reference::CausalAttention(in[0], in[1], in[2], past);
    };
    CompareWithReference(fused, reference,
                         {torch::randn({2, shape.heads, shape.time, 16}),
                          torch::randn({2, shape.kv_heads, total, 16}),
                          torch::randn({2, shape.kv_heads, total, 16})},
                         3);
  }
}

TEST_CASE("fused linear matches torch::linear in output, dx and dweight", "[model][unit][ops]") {
  torch::manual_seed(9);
  const Op fused = [](const auto& in) { return ops::cpu::Linear(in[0], in[1]); };
  const Op reference = [](const auto& in) { return torch::linear(in[0], in[1]); };
  // Row and feature counts that do not divide into the shares evenly; a 3-d input as the model
  // passes it; a single row.
  CompareWithReference(fused, reference, {torch::randn({37, 24}), torch::randn({29, 24})}, 2);
  CompareWithReference(fused, reference, {torch::randn({3, 11, 16}), torch::randn({40, 16})}, 2);
  CompareWithReference(fused, reference, {torch::randn({1, 8}), torch::randn({5, 8})}, 2);
  // Only the weight trains (the input is data): dx is neither wanted nor computed.
  torch::Tensor x = torch::randn({9, 8});
  torch::Tensor w = torch::randn({6, 8}, torch::requires_grad());
  ops::cpu::Linear(x, w).sum().backward();
  CheckClose(w.grad(), torch::ones({9, 6}).t().mm(x), "dweight with a constant input");
}

TEST_CASE("fused attention reads non-contiguous q, k, v views correctly", "[model][unit][ops]") {
  torch::manual_seed(4);
  // q, k, v as the model makes them: heads split out of one [B, T, 3, H, hd] projection.
  torch::Tensor qkv = torch::randn({2, 9, 3, 2, 8});
  torch::Tensor q = qkv.select(2, 0).transpose(1, 2);
  torch::Tensor k = qkv.select(2, 1).transpose(1, 2);
  torch::Tensor v = qkv.select(2, 2).transpose(1, 2);
  CheckClose(ops::cpu::CausalAttention(q, k, v, 0), ops::reference::CausalAttention(q, k, v, 0),
             "output");
}

TEST_CASE("fused SwiGLU matches the reference in output and both gradients", "[model][unit][ops]") {
  torch::manual_seed(5);
  const Op fused = [](const auto& in) { return ops::cpu::SwiGlu(in[0], in[1]); };
  const Op reference = [](const auto& in) { return ops::reference::SwiGlu(in[0], in[1]); };
  // Gates up to +-12: both tails of the sigmoid.
  CompareWithReference(fused, reference, {torch::randn({3, 37}) * 4, torch::randn({3, 37})}, 2);
}

TEST_CASE("fused cross-entropy matches the reference loss and logit gradient",
          "[model][unit][ops]") {
  torch::manual_seed(6);
  for (int64_t vocab : {29, 256}) {
    INFO("V " << vocab);
    const Op fused = [](const auto& in) { return ops::cpu::CrossEntropy(in[0], in[1]); };
    const Op reference = [](const auto& in) { return ops::reference::CrossEntropy(in[0], in[1]); };
    CompareWithReference(fused, reference,
                         {torch::randn({13, vocab}) * 3, torch::randint(vocab, {13})}, 1);
  }
}

TEST_CASE("the dispatcher runs the fused op for CPU fp32 under kFast only", "[model][unit][ops]") {
  torch::manual_seed(7);
  torch::Tensor logits = torch::randn({6, 11}, torch::requires_grad());
  torch::Tensor targets = torch::randint(11, {6});
  // Which path ran shows in the autograd node's name.
  const std::string fused_name = ops::CrossEntropy(logits, targets).grad_fn()->name();
  CHECK(fused_name.find("CrossEntropyFunction") != std::string::npos);

  ops::SetImpl(ops::Impl::kReference);
  const std::string reference_name = ops::CrossEntropy(logits, targets).grad_fn()->name();
  ops::SetImpl(ops::Impl::kFast);
  CHECK(reference_name.find("CrossEntropyFunction") == std::string::npos);

  // fp64 and the ignore index (-100) fall back to the reference, with its semantics.
  torch::Tensor x64 = torch::randn({4, 8}, torch::kFloat64).requires_grad_();
  CHECK(ops::RmsNorm(x64, torch::ones({8}, torch::kFloat64), 1e-5)
            .grad_fn()
            ->name()
            .find("RmsNormFunction") == std::string::npos);
  torch::Tensor ignored = targets.clone();
  ignored[0] = -100;
  CheckClose(ops::CrossEntropy(logits, ignored), ops::reference::CrossEntropy(logits, ignored),
             "loss with an ignored target");
}

TEST_CASE("MacCounter counts linear and attention multiply-adds of the fast path",
          "[model][unit][ops]") {
  ops::MacCounter counter;
  ops::Linear(torch::randn({2, 3, 16}), torch::randn({8, 16}));
  CHECK(counter.macs() == 2 * 3 * 16 * 8);
  {
    ops::MacCounter inner;
    // B 2, H 4, T 5, S 9 (past 4), hd 8: 2 * T * S * hd per (batch, head).
    ops::CausalAttention(torch::randn({2, 4, 5, 8}), torch::randn({2, 2, 9, 8}),
                         torch::randn({2, 2, 9, 8}), 4);
    CHECK(inner.macs() == 2 * 4 * 2 * 5 * 9 * 8);
  }
  CHECK(counter.macs() == 2 * 3 * 16 * 8);
}

}  // namespace
}  // namespace scalelab::model
