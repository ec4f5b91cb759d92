// The SSD scan: the chunked algorithm and the recurrent step against the sequential definition.

#include "model/ssd.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "model/ops.h"

namespace scalelab::model {
namespace {

struct ScanInputs {
  torch::Tensor x, dt, a, b, c, initial_state;
};

// dt in (0, ~2] and a in [-16, -1]: decays per step from ~1 down to exp(-32), the range a
// trained Mamba-2 head covers.
ScanInputs RandomInputs(int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                        int64_t d_state, bool with_initial_state, torch::ScalarType dtype) {
  const torch::TensorOptions options = torch::TensorOptions().dtype(dtype);
  ScanInputs inputs;
  inputs.x = torch::randn({batch, tokens, heads, head_dim}, options);
  inputs.dt = torch::softplus(torch::randn({batch, tokens, heads}, options) - 1.0);
  inputs.a = -torch::empty({heads}, options).uniform_(1.0, 16.0);
  inputs.b = torch::randn({batch, tokens, d_state}, options);
  inputs.c = torch::randn({batch, tokens, d_state}, options);
  if (with_initial_state) {
    inputs.initial_state = torch::randn({batch, heads, head_dim, d_state}, options);
  }
  return inputs;
}

bool Close(const torch::Tensor& actual, const torch::Tensor& expected, double rtol, double atol) {
  return torch::allclose(actual, expected, rtol, atol);
}

TEST_CASE("The chunked scan and the recurrent step match the sequential scan in fp32",
          "[model][unit][ssd]") {
  struct Shape {
    int64_t tokens, heads, head_dim, d_state, chunk;
  };
  // Multiples of the chunk, ragged ends, a sequence shorter than one chunk, chunk 1.
  const std::vector<Shape> shapes = {
      {32, 2, 4, 8, 8}, {37, 3, 8, 4, 8}, {5, 1, 16, 16, 64}, {24, 4, 2, 3, 16}, {7, 2, 4, 4, 1}};
  for (const Shape& shape : shapes) {
    for (const bool with_initial_state : {false, true}) {
      CAPTURE(shape.tokens, shape.heads, shape.head_dim, shape.d_state, shape.chunk,
              with_initial_state);
      torch::manual_seed(7);
      ScanInputs in = RandomInputs(2, shape.tokens, shape.heads, shape.head_dim, shape.d_state,
                                   with_initial_state, torch::kFloat);
      torch::Tensor naive_state;
      torch::Tensor naive =
          ssd::ScanNaive(in.x, in.dt, in.a, in.b, in.c, in.initial_state, &naive_state);
      torch::Tensor chunked_state;
      torch::Tensor chunked = ssd::ScanChunked(in.x, in.dt, in.a, in.b, in.c, shape.chunk,
                                               in.initial_state, &chunked_state);
      REQUIRE(chunked.sizes() == in.x.sizes());
      CHECK(chunked.scalar_type() == torch::kFloat);
      CHECK(Close(chunked, naive, 1e-4, 1e-5));
      CHECK(Close(chunked_state, naive_state, 1e-4, 1e-5));

      torch::Tensor state =
          with_initial_state ? in.initial_state.clone() : torch::zeros_like(naive_state);
      std::vector<torch::Tensor> steps;
      for (int64_t t = 0; t < shape.tokens; ++t) {
        steps.push_back(ssd::Step(in.x.select(1, t), in.dt.select(1, t), in.a, in.b.select(1, t),
                                  in.c.select(1, t), state));
      }
      CHECK(Close(torch::stack(steps, 1), naive, 1e-4, 1e-5));
      CHECK(Close(state, naive_state, 1e-4, 1e-5));
    }
  }
}

TEST_CASE("The chunked scan agrees with the sequential scan to 1e-10 in fp64",
          "[model][unit][ssd]") {
  torch::manual_seed(11);
  ScanInputs in = RandomInputs(2, 45, 3, 8, 16, /*with_initial_state=*/true, torch::kDouble);
  torch::Tensor naive_state, chunked_state;
  torch::Tensor naive =
      ssd::ScanNaive(in.x, in.dt, in.a, in.b, in.c, in.initial_state, &naive_state);
  torch::Tensor chunked =
      ssd::ScanChunked(in.x, in.dt, in.a, in.b, in.c, 16, in.initial_state, &chunked_state);
  CHECK(chunked.scalar_type() == torch::kDouble);
  CHECK((chunked - naive).abs().max().item<double>() < 1e-10);
  CHECK((chunked_state - naive_state).abs().max().item<double>() < 1e-10);
}

TEST_CASE("A sequence scanned in two pieces, the state carried over, equals one scan",
          "[model][unit][ssd]") {
  torch::manual_seed(3);
  ScanInputs in = RandomInputs(1, 40, 2, 4, 8, /*with_initial_state=*/false, torch::kFloat);
  torch::Tensor whole = ssd::ScanChunked(in.x, in.dt, in.a, in.b, in.c, 8, {}, nullptr);
  torch::Tensor middle_state, end_state;
  torch::Tensor first =
      ssd::ScanChunked(in.x.narrow(1, 0, 13), in.dt.narrow(1, 0, 13), in.a, in.b.narrow(1, 0, 13),
                       in.c.narrow(1, 0, 13), 8, {}, &middle_state);
  torch::Tensor second =
      ssd::ScanChunked(in.x.narrow(1, 13, 27), in.dt.narrow(1, 13, 27), in.a,
                       in.b.narrow(1, 13, 27), in.c.narrow(1, 13, 27), 8, middle_state, &end_state);
  CHECK(Close(torch::cat({first, second}, 1), whole, 1e-4, 1e-5));
}

TEST_CASE("The scan runs in bf16 with fp32 decay sums and stays near the fp32 result",
          "[model][unit][ssd]") {
  torch::manual_seed(5);
  ScanInputs in = RandomInputs(2, 50, 2, 8, 8, /*with_initial_state=*/false, torch::kFloat);
  torch::Tensor reference = ssd::ScanNaive(in.x, in.dt, in.a, in.b, in.c, {}, nullptr);
  torch::Tensor x16 = in.x.to(torch::kBFloat16);
  torch::Tensor dt16 = in.dt.to(torch::kBFloat16);
  torch::Tensor b16 = in.b.to(torch::kBFloat16);
  torch::Tensor c16 = in.c.to(torch::kBFloat16);
  torch::Tensor chunked = ssd::ScanChunked(x16, dt16, in.a, b16, c16, 16, {}, nullptr);
  CHECK(chunked.scalar_type() == torch::kBFloat16);
  // bf16 rounding of the inputs alone moves outputs by ~2^-8 relative; 0.05 of the output's
  // scale bounds it with room, and would catch a decay computed in bf16 over 50 steps.
  const double scale = reference.abs().max().item<double>();
  CHECK((chunked.to(torch::kFloat) - reference).abs().max().item<double>() < 0.05 * scale);
}

TEST_CASE("Gradients through the chunked scan equal those through the sequential scan",
          "[model][unit][ssd]") {
  torch::manual_seed(9);
  ScanInputs in = RandomInputs(1, 19, 2, 4, 4, /*with_initial_state=*/true, torch::kDouble);
  std::vector<torch::Tensor> leaves = {in.x, in.dt, in.a, in.b, in.c, in.initial_state};
  for (torch::Tensor& leaf : leaves) leaf.requires_grad_(true);
  torch::Tensor weights = torch::randn_like(in.x);
  torch::Tensor final_naive, final_chunked;
  // Separate statements: the state must be written before it is summed.
  torch::Tensor naive_y =
      ssd::ScanNaive(in.x, in.dt, in.a, in.b, in.c, in.initial_state, &final_naive);
  torch::Tensor naive_loss = (naive_y * weights).sum() + final_naive.sum();
  std::vector<torch::Tensor> naive_grads = torch::autograd::grad({naive_loss}, leaves);
  torch::Tensor chunked_y =
      ssd::ScanChunked(in.x, in.dt, in.a, in.b, in.c, 8, in.initial_state, &final_chunked);
  torch::Tensor chunked_loss = (chunked_y * weights).sum() + final_chunked.sum();
  std::vector<torch::Tensor> chunked_grads = torch::autograd::grad({chunked_loss}, leaves);
  for (size_t idx = 0; idx < leaves.size(); ++idx) {
    CAPTURE(idx);
    CHECK(Close(chunked_grads[idx], naive_grads[idx], 1e-8, 1e-10));
  }
}

TEST_CASE("The chunked scan counts the multiply-adds of its products", "[model][unit][ssd]") {
  torch::manual_seed(1);
  ScanInputs in = RandomInputs(2, 20, 3, 4, 5, /*with_initial_state=*/false, torch::kFloat);
  ops::MacCounter counter;
  ssd::ScanChunked(in.x, in.dt, in.a, in.b, in.c, 8, {}, nullptr);
  // 3 chunks of 8 (the last padded) per sequence: C B^T 8*8*5, scores x 3*8*8*4, chunk state and
  // readout 2*3*8*4*5, carried state 3*4*5.
  const int64_t per_chunk = 8 * 8 * 5 + 3 * 8 * 8 * 4 + 2 * 3 * 8 * 4 * 5 + 3 * 4 * 5;
  CHECK(counter.macs() == 2 * 3 * per_chunk);
  CHECK(ssd::ChunkedScanMacs(2, 20, 3, 4, 5, 8) == 2 * 3 * per_chunk);
  // Shorter than a chunk: one chunk of its own length.
  CHECK(ssd::ChunkedScanMacs(1, 5, 3, 4, 5, 64) ==
        5 * 5 * 5 + 3 * 5 * 5 * 4 + 2 * 3 * 5 * 4 * 5 + 3 * 4 * 5);
}

}  // namespace
}  // namespace scalelab::model
