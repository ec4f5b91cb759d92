// The numeric building blocks every model family is written in: RMSNorm, rotary embeddings,
// causal (grouped-query) attention, SwiGLU, linear layers and cross-entropy. One entry point per
// op; each picks its implementation by device:
//   CUDA    the kernels in kernels/ where one exists (when built with them), LibTorch's fused
//           attention (LibTorch >= 2.0), LibTorch's ops otherwise;
//   CPU     fused ops (one pass over memory, at::parallel_for) as custom autograd functions, or
//           the eager composition of LibTorch ops where no fused op is faster.
// ops::reference:: holds the eager compositions: the definition each fast path is tested against.
//
// Every op also adds its multiply-adds to the active MacCounter, which is how the FLOPs-per-token
// formula of each family is checked against what one forward pass actually computes.

#ifndef SCALELAB_MODEL_OPS_H_
#define SCALELAB_MODEL_OPS_H_

#include <torch/torch.h>

#include <cstdint>

namespace scalelab::model::ops {

// Counts the multiply-adds of every op below run on this thread while it is alive (nesting: the
// innermost counter counts). Forward passes only: backward and no-grad make no difference to the
// count, which is of the ops called.
class MacCounter {
 public:
  MacCounter();
  ~MacCounter();
  MacCounter(const MacCounter&) = delete;
  MacCounter& operator=(const MacCounter&) = delete;
  int64_t macs() const { return macs_; }

 private:
  friend void AddMacs(int64_t macs);
  int64_t macs_ = 0;
  MacCounter* outer_;
};

// Which implementation the ops run: kFast (the default: kernels and fused ops where they exist)
// or kReference (the eager compositions in ops::reference, everywhere). Process-wide; set it
// before building or running a model, e.g. to compare two runs that differ only in the kernels.
enum class Impl { kFast, kReference };
void SetImpl(Impl impl);
Impl CurrentImpl();

// Sizes the CPU threading for the ops: LibTorch's intra-op pool (OpenMP) gets `threads`, and
// OpenBLAS's own pool is cut to one thread. The fused ops run their products as one
// single-threaded BLAS call per share of an at::parallel_for, so that one pool of `threads`
// threads does all the work; left at its default, OpenBLAS's pthread pool (sized to every core)
// yield-spins against OpenMP's workers. Products that do not go through these ops (LibTorch's own
// matmul, bmm) then run on one thread. Process-wide; call before training.
void ConfigureCpuThreads(int threads);

// Adds to the active counter, if any (for ops written outside this file, e.g. a scan).
void AddMacs(int64_t macs);

// x [..., in] @ weight[out, in]^T (+ bias): in * out multiply-adds per row.
torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias = {});

// x [..., d] / sqrt(mean(x^2) + eps) * weight [d].
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// Rotary embedding (Su et al. 2021) in the "rotate half" layout: channel i pairs with channel
// i + head_dim/2. x [B, H, T, head_dim]; cos and sin [T, head_dim/2] for the T positions of x.
torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);

// cos and sin tables [T, head_dim/2] for positions first .. first + T - 1, fp32 on `device`.
void RotaryTables(int64_t first, int64_t count, int64_t head_dim, double theta,
                  const torch::Device& device, torch::Tensor* cos, torch::Tensor* sin);

// Causal softmax attention with grouped-query heads. q [B, H, T, hd]; k, v [B, Hkv, S, hd] with
// H a multiple of Hkv (query head h reads kv head h / (H / Hkv)) and S = past + T: query t sits at
// position past + t and sees keys 0 .. past + t. Scale 1/sqrt(hd). Returns [B, H, T, hd].
// Counts 2 * T * S * hd multiply-adds per (batch, head): the dense score and value products.
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past);

// silu(gate) * up, elementwise.
torch::Tensor SwiGlu(const torch::Tensor& gate, const torch::Tensor& up);

// Mean cross-entropy in nats of logits [N, V] against int64 targets [N].
torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets);

namespace reference {
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);
torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, int64_t past);
torch::Tensor SwiGlu(const torch::Tensor& gate, const torch::Tensor& up);
torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& targets);
}  // namespace reference

}  // namespace scalelab::model::ops

#endif  // SCALELAB_MODEL_OPS_H_
