#include "model/transformer.h"

#include <cmath>
#include <limits>
#include <memory>

#include "absl/strings/str_cat.h"
#include "model/families.h"
#include "model/layer_norm.h"

namespace scalelab::model {
namespace {

using torch::indexing::Slice;

constexpr double kInitStd = 0.02;

void InitLinear(torch::nn::Linear& linear, double std) {
  torch::nn::init::normal_(linear->weight, 0.0, std);
  if (linear->bias.defined()) torch::nn::init::zeros_(linear->bias);
}

torch::nn::LayerNorm MakeLayerNorm(int64_t d_model) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model}));
}

}  // namespace

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t d_model, int64_t n_heads, int64_t seq_len)
    : n_heads_(n_heads) {
  qkv = register_module("qkv", torch::nn::Linear(d_model, 3 * d_model));
  proj = register_module("proj", torch::nn::Linear(d_model, d_model));
  // Additive rather than boolean mask: baddbmm then applies scale and mask in the same kernel
  // as the q.k product, which saves two passes over the [B*H, T, T] scores per layer.
  causal_mask_ = register_buffer(
      "causal_mask",
      torch::full({seq_len, seq_len}, -std::numeric_limits<float>::infinity()).triu(1));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, LayerCache* cache) {
  const int64_t batch = x.size(0);
  const int64_t time = x.size(1);
  const int64_t d_model = x.size(2);
  const int64_t head_dim = d_model / n_heads_;
  // One copy lays out q, k and v as [3, B, H, T, hd]; the per-head views below are then free.
  torch::Tensor qkv_heads =
      qkv(x).view({batch, time, 3, n_heads_, head_dim}).permute({2, 0, 3, 1, 4}).contiguous();
  torch::Tensor k = qkv_heads[1];
  torch::Tensor v = qkv_heads[2];
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
  const int64_t total = past + time;
  torch::Tensor q = qkv_heads[0].reshape({batch * n_heads_, time, head_dim});
  k = k.reshape({batch * n_heads_, total, head_dim});
  v = v.reshape({batch * n_heads_, total, head_dim});

  // Rows past..past+T of the full mask: new position p sees keys 0..p, cached ones included.
  torch::Tensor mask = causal_mask_.index({Slice(past, total), Slice(0, total)});
  torch::Tensor scores = torch::baddbmm(mask, q, k.transpose(1, 2), /*beta=*/1.0,
                                        /*alpha=*/1.0 / std::sqrt(static_cast<double>(head_dim)));
  torch::Tensor weights = torch::softmax(scores, /*dim=*/-1);
  torch::Tensor heads = torch::bmm(weights, v);  // [B*H, T, hd]
  torch::Tensor merged =
      heads.view({batch, n_heads_, time, head_dim}).transpose(1, 2).reshape({batch, time, d_model});
  return proj(merged);
}

TransformerBlockImpl::TransformerBlockImpl(int64_t d_model, int64_t n_heads, int64_t seq_len,
                                           int64_t d_ff) {
  ln_attn = register_module("ln_attn", MakeLayerNorm(d_model));
  attn = register_module("attn", CausalSelfAttention(d_model, n_heads, seq_len));
  ln_mlp = register_module("ln_mlp", MakeLayerNorm(d_model));
  fc = register_module("fc", torch::nn::Linear(d_model, d_ff));
  fc_proj = register_module("fc_proj", torch::nn::Linear(d_ff, d_model));
}

torch::Tensor TransformerBlockImpl::forward(torch::Tensor x, LayerCache* cache) {
  x = x + attn(ApplyLayerNorm(*ln_attn, x), cache);
  return x + fc_proj(torch::gelu(fc(ApplyLayerNorm(*ln_mlp, x))));
}

TransformerImpl::TransformerImpl(const scalelab::v1::ModelSpec& spec)
    : d_model_(spec.d_model()),
      n_layers_(spec.n_layers()),
      seq_len_(spec.seq_len()),
      // The proto defines d_ff 0 as 4 * d_model (the GPT-2 ratio).
      d_ff_(spec.d_ff() > 0 ? spec.d_ff() : 4 * static_cast<int64_t>(spec.d_model())) {
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(spec.vocab_size(), d_model_));
  position_embedding_ =
      register_module("position_embedding", torch::nn::Embedding(seq_len_, d_model_));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t layer_idx = 0; layer_idx < n_layers_; ++layer_idx) {
    blocks_->push_back(TransformerBlock(d_model_, spec.n_heads(), seq_len_, d_ff_));
  }
  ln_final_ = register_module("ln_final", MakeLayerNorm(d_model_));

  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(token_embedding_->weight, 0.0, kInitStd);
  torch::nn::init::normal_(position_embedding_->weight, 0.0, kInitStd);
  const double residual_std = kInitStd / std::sqrt(2.0 * static_cast<double>(n_layers_));
  for (const auto& module : *blocks_) {
    auto block = module->as<TransformerBlockImpl>();
    InitLinear(block->attn->qkv, kInitStd);
    InitLinear(block->attn->proj, residual_std);
    InitLinear(block->fc, kInitStd);
    InitLinear(block->fc_proj, residual_std);
  }
}

torch::Tensor TransformerImpl::Run(const torch::Tensor& tokens, int64_t first_position,
                                   InferenceState* state) {
  const int64_t time = tokens.size(1);
  torch::Tensor positions =
      torch::arange(first_position, first_position + time,
                    torch::TensorOptions().dtype(torch::kLong).device(tokens.device()));
  torch::Tensor x = token_embedding_(tokens) + position_embedding_(positions);
  for (size_t layer_idx = 0; layer_idx < blocks_->size(); ++layer_idx) {
    LayerCache* cache = state == nullptr ? nullptr : &state->layers[layer_idx];
    x = blocks_->at<TransformerBlockImpl>(layer_idx).forward(x, cache);
  }
  // Tied head: logits are similarities with the token embeddings, which halves the parameters a
  // byte-level model spends on its vocabulary and trains both ends of the network together.
  return torch::linear(ApplyLayerNorm(*ln_final_, x), token_embedding_->weight);
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens) {
  return Run(tokens, /*first_position=*/0, /*state=*/nullptr);
}

int64_t TransformerImpl::NumNonEmbeddingParams() const {
  return NumParams() - token_embedding_->weight.numel() - position_embedding_->weight.numel();
}

double TransformerImpl::FlopsPerToken() const {
  return 6.0 * static_cast<double>(NumNonEmbeddingParams()) +
         6.0 * static_cast<double>(n_layers_ * seq_len_ * d_model_);
}

ParamGroups TransformerImpl::ParameterGroups() const {
  ParamGroups groups;
  const torch::Tensor& token_weight = token_embedding_->weight;
  const torch::Tensor& position_weight = position_embedding_->weight;
  for (const torch::Tensor& parameter : parameters()) {
    const bool is_embedding = parameter.is_same(token_weight) || parameter.is_same(position_weight);
    if (parameter.dim() == 2 && !is_embedding) {
      groups.decay.push_back(parameter);
    } else {
      groups.no_decay.push_back(parameter);
    }
  }
  return groups;
}

InferenceState TransformerImpl::NewInferenceState(int64_t batch_size) const {
  InferenceState state;
  state.batch_size = batch_size;
  state.layers.resize(static_cast<size_t>(n_layers_));
  return state;
}

absl::StatusOr<torch::Tensor> TransformerImpl::ForwardStep(const torch::Tensor& tokens,
                                                           InferenceState& state) {
  if (tokens.dim() != 2 || tokens.size(0) != state.batch_size || tokens.size(1) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ForwardStep: expected tokens [", state.batch_size, ", T >= 1], got ",
                     tokens.dim(), "-d tokens of ", tokens.numel(), " elements"));
  }
  const int64_t time = tokens.size(1);
  if (state.position + time > seq_len_) {
    return absl::OutOfRangeError(absl::StrCat("ForwardStep: ", state.position, " + ", time,
                                              " tokens exceed the context of ", seq_len_));
  }
  torch::NoGradGuard no_grad;
  torch::Tensor logits = Run(tokens, state.position, &state);
  state.position += time;
  return logits;
}

std::shared_ptr<CausalLM> BuildTransformer(const scalelab::v1::ModelSpec& spec) {
  return std::make_shared<TransformerImpl>(spec);
}

}  // namespace scalelab::model
