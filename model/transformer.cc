#include "model/transformer.h"

#include <cmath>
#include <limits>

namespace scalelab::model {
namespace {

constexpr double kInitStd = 0.02;

void InitLinear(torch::nn::Linear& linear, double std) {
  torch::nn::init::normal_(linear->weight, 0.0, std);
  if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
}

}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(const TransformerConfig& config)
    : n_heads_(config.n_heads) {
  qkv = register_module("qkv", torch::nn::Linear(config.d_model, 3 * config.d_model));
  proj = register_module("proj", torch::nn::Linear(config.d_model, config.d_model));
  // Additive rather than boolean mask: baddbmm then applies scale and mask in the same kernel
  // as the q.k product, which saves two passes over the [B*H, T, T] scores per layer.
  causal_mask_ = register_buffer("causal_mask", torch::full({config.seq_len, config.seq_len},
                                                            -std::numeric_limits<float>::infinity())
                                                    .triu(1));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0);
  const int64_t time = x.size(1);
  const int64_t d_model = x.size(2);
  const int64_t head_dim = d_model / n_heads_;
  // One copy lays out q, k and v as [3, B, H, T, hd]; the per-head views below are then free.
  torch::Tensor qkv_heads =
      qkv(x).view({batch, time, 3, n_heads_, head_dim}).permute({2, 0, 3, 1, 4}).contiguous();
  torch::Tensor q = qkv_heads[0].view({batch * n_heads_, time, head_dim});
  torch::Tensor k = qkv_heads[1].view({batch * n_heads_, time, head_dim});
  torch::Tensor v = qkv_heads[2].view({batch * n_heads_, time, head_dim});

  torch::Tensor mask =
      causal_mask_.index({torch::indexing::Slice(0, time), torch::indexing::Slice(0, time)});
  torch::Tensor scores = torch::baddbmm(mask, q, k.transpose(1, 2), /*beta=*/1.0,
                                        /*alpha=*/1.0 / std::sqrt(static_cast<double>(head_dim)));
  torch::Tensor weights = torch::softmax(scores, /*dim=*/-1);
  torch::Tensor heads = torch::bmm(weights, v);  // [B*H, T, hd]
  torch::Tensor merged =
      heads.view({batch, n_heads_, time, head_dim}).transpose(1, 2).reshape({batch, time, d_model});
  return proj(merged);
}

TransformerBlockImpl::TransformerBlockImpl(const TransformerConfig& config) {
  ln_attn = register_module("ln_attn",
                            torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  attn = register_module("attn", CausalSelfAttention(config));
  ln_mlp = register_module("ln_mlp",
                           torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  fc = register_module("fc", torch::nn::Linear(config.d_model, config.d_ff));
  fc_proj = register_module("fc_proj", torch::nn::Linear(config.d_ff, config.d_model));
}

torch::Tensor TransformerBlockImpl::forward(torch::Tensor x) {
  x = x + attn(ln_attn(x));
  return x + fc_proj(torch::gelu(fc(ln_mlp(x))));
}

TransformerImpl::TransformerImpl(const TransformerConfig& config) : config_(config) {
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(config.vocab_size, config.d_model));
  position_embedding_ =
      register_module("position_embedding", torch::nn::Embedding(config.seq_len, config.d_model));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t layer_idx = 0; layer_idx < config.n_layers; ++layer_idx) {
    blocks_->push_back(TransformerBlock(config));
  }
  ln_final_ = register_module("ln_final",
                              torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));

  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(token_embedding_->weight, 0.0, kInitStd);
  torch::nn::init::normal_(position_embedding_->weight, 0.0, kInitStd);
  const double residual_std = kInitStd / std::sqrt(2.0 * static_cast<double>(config.n_layers));
  for (const auto& module : *blocks_) {
    auto block = module->as<TransformerBlockImpl>();
    InitLinear(block->attn->qkv, kInitStd);
    InitLinear(block->attn->proj, residual_std);
    InitLinear(block->fc, kInitStd);
    InitLinear(block->fc_proj, residual_std);
  }
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens) {
  const int64_t time = tokens.size(1);
  torch::Tensor positions =
      torch::arange(time, torch::TensorOptions().dtype(torch::kLong).device(tokens.device()));
  torch::Tensor x = token_embedding_(tokens) + position_embedding_(positions);
  for (const auto& module : *blocks_) {
    x = module->as<TransformerBlockImpl>()->forward(x);
  }
  // Tied head: logits are similarities with the token embeddings, which halves the parameters a
  // byte-level model spends on its vocabulary and trains both ends of the network together.
  return torch::linear(ln_final_(x), token_embedding_->weight);
}

torch::Tensor TransformerImpl::Loss(const torch::Tensor& inputs, const torch::Tensor& targets) {
  torch::Tensor logits = forward(inputs);
  return torch::nn::functional::cross_entropy(logits.view({-1, logits.size(-1)}),
                                              targets.reshape({-1}));
}

int64_t TransformerImpl::NumParams() const {
  int64_t total = 0;
  for (const torch::Tensor& parameter : parameters()) total += parameter.numel();
  return total;
}

int64_t TransformerImpl::NumNonEmbeddingParams() const {
  return NumParams() - token_embedding_->weight.numel() - position_embedding_->weight.numel();
}

void TransformerImpl::SplitForWeightDecay(std::vector<torch::Tensor>& decay,
                                          std::vector<torch::Tensor>& no_decay) const {
  const torch::Tensor& token_weight = token_embedding_->weight;
  const torch::Tensor& position_weight = position_embedding_->weight;
  for (const torch::Tensor& parameter : parameters()) {
    const bool is_embedding = parameter.is_same(token_weight) || parameter.is_same(position_weight);
    if (parameter.dim() == 2 && !is_embedding) {
      decay.push_back(parameter);
    } else {
      no_decay.push_back(parameter);
    }
  }
}

}  // namespace scalelab::model
