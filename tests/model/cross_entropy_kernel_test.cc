#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/cross_entropy.cuh"
#include "kernels/cross_entropy_ref.h"
#include "kernels/cuda_check.cuh"
#include "tests/model/kernel_test_support.h"

namespace scalelab::kernels {
namespace {

using testing::CheckClose;
using testing::DeviceBuffer;
using testing::RandomNormal;

// rows, vocab: a single class, tiny and odd widths, one below the block size, GPT-2's vocabulary.
constexpr int kShapes[][2] = {{1, 1}, {7, 5}, {64, 511}, {33, 1000}, {16, 50257}};

std::vector<int64_t> Targets(int rows, int vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<int64_t> targets(rows);
  for (int64_t& target : targets) target = pick(rng);
  return targets;
}

TEST_CASE("The fused CUDA cross-entropy matches the CPU reference at rtol 1e-4", "[kernels][gpu]") {
  SCALELAB_SKIP_WITHOUT_GPU();
  std::mt19937 rng(42);
  for (const auto& shape : kShapes) {
    const int rows = shape[0], vocab = shape[1];
    INFO("rows=" << rows << " vocab=" << vocab);
    const std::vector<float> logits =
        RandomNormal(static_cast<size_t>(rows) * vocab, 0.0f, 3.0f, rng);
    const std::vector<int64_t> targets = Targets(rows, vocab, rng);
    const float dloss = 0.75f;
    const float scale = 1.0f / rows;
    std::vector<float> ref_loss(rows), ref_grad(logits.size());
    CrossEntropyRef(ref_loss.data(), ref_grad.data(), logits.data(), targets.data(), dloss, scale,
                    rows, vocab);

    DeviceBuffer<float> d_logits(logits), d_loss(rows), d_dloss(std::vector<float>{dloss});
    DeviceBuffer<int64_t> d_targets(targets);
    // In place, as the training step uses it: the gradient overwrites the logits.
    CrossEntropyForwardBackward(d_loss.get(), d_logits.get(), d_logits.get(), d_targets.get(),
                                d_dloss.get(), scale, rows, vocab, nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
    CheckClose(d_loss.ToHost(), ref_loss, 1e-4, 1e-5, "loss");
    // Probabilities of 1e-5 and below are where a relative bound means nothing.
    CheckClose(d_logits.ToHost(), ref_grad, 1e-4, 1e-7, "dlogits");

    // bf16 logits: the reference sees the rounded values; the gradient is rounded once more.
    const auto logits_bf16 = testing::ToBf16(logits);
    CrossEntropyRef(ref_loss.data(), ref_grad.data(), testing::ToFloat(logits_bf16).data(),
                    targets.data(), dloss, scale, rows, vocab);
    DeviceBuffer<__nv_bfloat16> d_logits_bf16(logits_bf16), d_grad_bf16(logits.size());
    CrossEntropyForwardBackward(d_loss.get(), d_grad_bf16.get(), d_logits_bf16.get(),
                                d_targets.get(), d_dloss.get(), scale, rows, vocab, nullptr);
    SCALELAB_CUDA_CHECK(cudaDeviceSynchronize());
    CheckClose(d_loss.ToHost(), ref_loss, 1e-4, 1e-5, "bf16 loss");
    CheckClose(testing::ToFloat(d_grad_bf16.ToHost()), ref_grad, 1e-2, 1e-6, "bf16 dlogits");
  }
}

}  // namespace
}  // namespace scalelab::kernels
