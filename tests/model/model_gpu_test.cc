// The model runtime's CUDA path against its CPU definition: the ops dispatch of model/ops.h on
// CUDA tensors (our kernels, LibTorch's fused attention), the SSD scan's no-grad CUDA path, and a
// Transformer step in bf16 autocast. Each test warns "skipping: no CUDA device" and returns where
// LibTorch sees no GPU (a CPU-only LibTorch, or no device): ctest reports it as skipped.

#include <torch/torch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/causal_lm.h"
#include "model/device.h"
#include "model/ops.h"
#include "model/optimizer.h"
#include "model/registry.h"
#include "model/ssd.h"
#include "runspec/run_config.h"

namespace scalelab::model {
namespace {

#define SCALELAB_SKIP_WITHOUT_TORCH_CUDA()                                     \
  do {                                                                         \
    if (!torch::cuda::is_available()) {                                        \
      WARN("skipping: no CUDA device (torch::cuda::is_available() is false)"); \
      return;                                                                  \
    }                                                                          \
  } while (0)

// Largest |actual - expected| relative to max |expected|, both moved to the CPU in fp64; printed
// by each check so the log shows the measured error, not only pass or fail.
double RelativeError(const torch::Tensor& actual, const torch::Tensor& expected) {
  const torch::Tensor a = actual.detach().to(torch::kCPU, torch::kDouble);
  const torch::Tensor e = expected.detach().to(torch::kCPU, torch::kDouble);
  const double scale = std::max(e.abs().max().item<double>(), 1e-30);
  return (a - e).abs().max().item<double>() / scale;
}

void CheckClose(const std::string& what, const torch::Tensor& actual, const torch::Tensor& expected,
                double tolerance) {
  const double error = RelativeError(actual, expected);
  UNSCOPED_INFO(what << ": relative error " << error << " (tolerance " << tolerance << ")");
  WARN("measured " << what << " relative_error=" << error << " tolerance=" << tolerance);
  CHECK(error <= tolerance);
}

// Forward and input gradient of `op` on CUDA with the fast implementation against the
// reference composition on the CPU in fp64.
template <typename Op>
void CompareOp(const std::string& name, const std::vector<torch::Tensor>& cpu_inputs, Op op,
               double tolerance) {
  std::vector<torch::Tensor> reference_inputs;
  std::vector<torch::Tensor> cuda_inputs;
  for (const torch::Tensor& input : cpu_inputs) {
    const bool grad = input.is_floating_point();
    reference_inputs.push_back(input.to(torch::kDouble).detach().requires_grad_(grad));
    cuda_inputs.push_back(input.to(torch::kCUDA).detach().requires_grad_(grad));
  }
  // Integer inputs (targets) stay int64.
  for (size_t i = 0; i < cpu_inputs.size(); ++i) {
    if (!cpu_inputs[i].is_floating_point()) reference_inputs[i] = cpu_inputs[i];
  }
  ops::SetImpl(ops::Impl::kReference);
  torch::Tensor expected = op(reference_inputs);
  expected.sum().backward();
  ops::SetImpl(ops::Impl::kFast);
  torch::Tensor actual = op(cuda_inputs);
  actual.sum().backward();
  CheckClose(name + " forward", actual, expected, tolerance);
  for (size_t i = 0; i < cuda_inputs.size(); ++i) {
    if (!cuda_inputs[i].is_floating_point()) continue;
    CheckClose(name + " grad " + std::to_string(i), cuda_inputs[i].grad(),
               reference_inputs[i].grad(), tolerance);
  }
}

TEST_CASE("On CUDA the ops of model/ops.h match their fp64 reference in fp32", "[model][gpu]") {
  SCALELAB_SKIP_WITHOUT_TORCH_CUDA();
  torch::manual_seed(7);
  const int64_t batch = 2, heads = 4, time = 64, head_dim = 32, d = heads * head_dim;
  CompareOp(
      "rms_norm", {torch::randn({batch, time, d}), torch::rand({d}) + 0.5},
      [](const std::vector<torch::Tensor>& in) { return ops::RmsNorm(in[0], in[1], 1e-5); }, 1e-4);
  torch::Tensor cos;
  torch::Tensor sin;
  ops::RotaryTables(0, time, head_dim, 10000.0, torch::kCPU, &cos, &sin);
  CompareOp(
      "rotary", {torch::randn({batch, heads, time, head_dim})},
      [&](const std::vector<torch::Tensor>& in) {
        const torch::Tensor c =
            cos.to(in[0].device(), in[0].is_cuda() ? torch::kFloat : torch::kDouble);
        const torch::Tensor s =
            sin.to(in[0].device(), in[0].is_cuda() ? torch::kFloat : torch::kDouble);
        return ops::ApplyRotary(in[0], c, s);
      },
      1e-4);
  CompareOp(
      "causal_attention",
      {torch::randn({batch, heads, time, head_dim}),
       torch::randn({batch, heads / 2, time, head_dim}),
       torch::randn({batch, heads / 2, time, head_dim})},
      [](const std::vector<torch::Tensor>& in) {
        return ops::CausalAttention(in[0], in[1], in[2], /*past=*/0);
      },
      1e-3);
  CompareOp(
      "cross_entropy", {torch::randn({batch * time, 1000}), torch::randint(1000, {batch * time})},
      [](const std::vector<torch::Tensor>& in) {
        return ops::CrossEntropy(in[0], in[1].to(in[0].device()));
      },
      1e-4);
}

TEST_CASE("On CUDA one new token after a cached past attends as the reference does",
          "[model][gpu]") {
  SCALELAB_SKIP_WITHOUT_TORCH_CUDA();
  torch::manual_seed(8);
  const torch::Tensor q = torch::randn({1, 4, 1, 16});
  const torch::Tensor k = torch::randn({1, 4, 9, 16});
  const torch::Tensor v = torch::randn({1, 4, 9, 16});
  const torch::Tensor expected = ops::reference::CausalAttention(q, k, v, /*past=*/8);
  const torch::Tensor actual =
      ops::CausalAttention(q.to(torch::kCUDA), k.to(torch::kCUDA), v.to(torch::kCUDA), 8);
  CheckClose("attention_decode_step", actual, expected, 1e-4);
}

TEST_CASE("On CUDA without autograd the SSD scan runs the kernels and matches ScanNaive",
          "[model][gpu]") {
  SCALELAB_SKIP_WITHOUT_TORCH_CUDA();
  torch::manual_seed(9);
  const int64_t batch = 2, tokens = 100, heads = 3, head_dim = 8, d_state = 16;
  const torch::Tensor x = torch::randn({batch, tokens, heads, head_dim});
  const torch::Tensor dt = torch::softplus(torch::randn({batch, tokens, heads}) - 1.0);
  const torch::Tensor a = -torch::empty({heads}).uniform_(1.0, 16.0);
  const torch::Tensor b = torch::randn({batch, tokens, d_state});
  const torch::Tensor c = torch::randn({batch, tokens, d_state});
  const torch::Tensor initial = torch::randn({batch, heads, head_dim, d_state});
  torch::Tensor expected_state;
  const torch::Tensor expected = ssd::ScanNaive(x, dt, a, b, c, initial, &expected_state);
  torch::NoGradGuard no_grad;
  torch::Tensor actual_state;
  const auto cuda = [](const torch::Tensor& t) { return t.to(torch::kCUDA); };
  const torch::Tensor actual = ssd::ScanChunked(cuda(x), cuda(dt), cuda(a), cuda(b), cuda(c),
                                                /*chunk=*/32, cuda(initial), &actual_state);
  CheckClose("ssd_scan y", actual, expected, 1e-4);
  CheckClose("ssd_scan final_state", actual_state, expected_state, 1e-4);
}

TEST_CASE("A Transformer in bf16 autocast on CUDA has the fp32 CPU loss and trains",
          "[model][gpu]") {
  SCALELAB_SKIP_WITHOUT_TORCH_CUDA();
  scalelab::v1::RunConfig config;
  scalelab::v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family("transformer");
  spec.set_d_model(128);
  spec.set_n_layers(2);
  spec.set_n_heads(4);
  spec.set_seq_len(64);
  spec.set_vocab_size(512);
  runspec::ApplyRunDefaults(&config);
  torch::manual_seed(10);
  absl::StatusOr<std::shared_ptr<CausalLM>> built = BuildModel(spec);
  REQUIRE(built.ok());
  CausalLM& model = **built;
  const torch::Tensor tokens = torch::randint(512, {4, 65});
  const torch::Tensor inputs = tokens.narrow(1, 0, 64);
  const torch::Tensor targets = tokens.narrow(1, 1, 64);
  const double cpu_loss = model.Loss(inputs, targets).item<double>();

  model.to(torch::kCUDA);
  const torch::Tensor cuda_inputs = inputs.to(torch::kCUDA);
  const torch::Tensor cuda_targets = targets.to(torch::kCUDA);
  std::unique_ptr<torch::optim::AdamW> optimizer = MakeAdamW(model, 1e-2, 0.0);
  double first_loss = 0;
  double last_loss = 0;
  for (int step = 0; step < 5; ++step) {
    torch::Tensor loss;
    {
      CudaAutocast autocast(torch::kBFloat16);
      loss = model.Loss(cuda_inputs, cuda_targets);
    }
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    (step == 0 ? first_loss : last_loss) = loss.item<double>();
  }
  const double error = std::abs(first_loss - cpu_loss) / cpu_loss;
  WARN("measured transformer_bf16_loss relative_error=" << error << " cpu=" << cpu_loss
                                                        << " cuda_bf16=" << first_loss
                                                        << " after_5_steps=" << last_loss);
  CHECK(error < 0.02);
  CHECK(last_loss < first_loss);
}

TEST_CASE("QueryCudaMemory reports the card's memory", "[model][gpu]") {
  SCALELAB_SKIP_WITHOUT_TORCH_CUDA();
  absl::StatusOr<CudaMemoryInfo> info = QueryCudaMemory();
  REQUIRE(info.ok());
  CHECK(info->total_bytes > 0);
  CHECK(info->used_bytes > 0);
  CHECK(info->used_bytes <= info->total_bytes);
}

}  // namespace
}  // namespace scalelab::model
