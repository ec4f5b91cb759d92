#include "model/attention.h"

#include "model/ops.h"
#include "model/parts.h"

namespace scalelab::model {

AttentionImpl::AttentionImpl(const AttentionOptions& options) : options_(options) {
  TORCH_CHECK(
      options.n_heads > 0 && options.n_kv_heads > 0 && options.n_heads % options.n_kv_heads == 0,
      "Attention: n_heads ", options.n_heads, " must be a positive multiple of n_kv_heads ",
      options.n_kv_heads);
  TORCH_CHECK(options.head_dim > 0 && options.head_dim % 2 == 0,
              "Attention: head_dim must be positive and even, got ", options.head_dim);
  const int64_t qkv_rows = (options.n_heads + 2 * options.n_kv_heads) * options.head_dim;
  qkv_weight = register_parameter("qkv_weight", torch::empty({qkv_rows, options.d_input}));
  InitNormal(qkv_weight, kInitStd);
  if (options.d_output > 0) {
    out_weight = register_parameter(
        "out_weight", torch::empty({options.d_output, options.n_heads * options.head_dim}));
    InitNormal(out_weight, ResidualInitStd(options.n_layers));
  }
}

int64_t AttentionImpl::OutputWidth() const {
  return options_.d_output > 0 ? options_.d_output : options_.n_heads * options_.head_dim;
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, int64_t first_position,
                                     LayerCache* cache) {
  const int64_t batch = x.size(0);
  const int64_t time = x.size(1);
  const int64_t heads = options_.n_heads;
  const int64_t kv_heads = options_.n_kv_heads;
  const int64_t head_dim = options_.head_dim;
  // [B, T, H + 2 Hkv, hd] -> [B, H + 2 Hkv, T, hd]: the head-major layout ops::CausalAttention
  // takes, split along heads without another copy.
  torch::Tensor qkv = ops::Linear(x, qkv_weight)
                          .view({batch, time, heads + 2 * kv_heads, head_dim})
                          .transpose(1, 2);
  std::vector<torch::Tensor> parts = qkv.split_with_sizes({heads, kv_heads, kv_heads}, /*dim=*/1);
  torch::Tensor cos;
  torch::Tensor sin;
  ops::RotaryTables(first_position, time, head_dim, options_.rope_theta, x.device(), &cos, &sin);
  cos = cos.to(x.scalar_type());
  sin = sin.to(x.scalar_type());
  torch::Tensor q = ops::ApplyRotary(parts[0], cos, sin);
  torch::Tensor k = ops::ApplyRotary(parts[1], cos, sin);
  torch::Tensor v = parts[2];
  int64_t past = 0;
  if (cache != nullptr) {
    if (cache->keys.defined()) {
      past = cache->keys.size(2);
      k = torch::cat({cache->keys, k}, /*dim=*/2);
      v = torch::cat({cache->values, v}, /*dim=*/2);
    }
    cache->keys = k;
    cache->values = v;
  }
  torch::Tensor heads_out = ops::CausalAttention(q, k, v, past);  // [B, H, T, hd]
  torch::Tensor merged = heads_out.transpose(1, 2).reshape({batch, time, heads * head_dim});
  return out_weight.defined() ? ops::Linear(merged, out_weight) : merged;
}

}  // namespace scalelab::model
