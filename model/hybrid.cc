#include "model/hybrid.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "model/families.h"
#include "model/ops.h"
#include "model/transformer.h"

namespace scalelab::model {
namespace {

// The attention branch of a parallel layer keeps the model's query/kv head ratio as far as its
// head count allows: the largest divisor of n_attn_heads not above round(n_attn_heads *
// n_kv_heads / n_heads).
int64_t ParallelKvHeads(const scalelab::v1::ModelSpec& spec, int64_t attn_heads) {
  const int64_t kv_heads = spec.n_kv_heads() > 0 ? spec.n_kv_heads() : spec.n_heads();
  int64_t target = std::max<int64_t>(
      1, std::llround(static_cast<double>(attn_heads * kv_heads) / spec.n_heads()));
  while (attn_heads % target != 0) --target;
  return target;
}

}  // namespace

std::string SequentialLayerKinds(const scalelab::v1::ModelSpec& spec) {
  if (!spec.hybrid().pattern().empty()) return spec.hybrid().pattern();
  const int64_t layers = spec.n_layers();
  const int64_t upper = layers > 1 ? layers - 1 : 1;
  const int64_t n_attn = std::clamp<int64_t>(
      std::llround(spec.hybrid().attn_ratio() * static_cast<double>(layers)), 1, upper);
  std::string kinds(static_cast<size_t>(layers), 'M');
  for (int64_t attn_idx = 0; attn_idx < n_attn; ++attn_idx) {
    const int64_t layer = ((attn_idx + 1) * layers + n_attn - 1) / n_attn - 1;
    kinds[static_cast<size_t>(layer)] = 'A';
  }
  return kinds;
}

int64_t ParallelAttentionHeads(const scalelab::v1::ModelSpec& spec) {
  const int64_t heads = spec.n_heads();
  const int64_t rounded = std::llround(static_cast<double>(heads) * spec.hybrid().attn_fraction());
  return std::clamp<int64_t>(rounded, 1, std::max<int64_t>(1, heads - 1));
}

MambaBlockImpl::MambaBlockImpl(const scalelab::v1::ModelSpec& spec) {
  norm = register_module("norm", RmsNorm(spec.d_model()));
  mixer = register_module("mixer", Mamba2Mixer(Mamba2OptionsFor(spec, spec.d_model())));
}

torch::Tensor MambaBlockImpl::forward(torch::Tensor x, LayerCache* cache) {
  return x + mixer(norm(x), cache);
}

ParallelBlockImpl::ParallelBlockImpl(const scalelab::v1::ModelSpec& spec) {
  const int64_t d_model = spec.d_model();
  const int64_t head_dim = d_model / spec.n_heads();
  const int64_t attn_heads = ParallelAttentionHeads(spec);
  const int64_t attn_width = attn_heads * head_dim;
  // A one-head model cannot give the SSM branch any width; runspec's rules do not forbid it, so
  // the registry turns this into kInvalidArgument.
  TORCH_CHECK(attn_width < d_model, "model.n_heads: a parallel hybrid needs at least 2 heads, got ",
              spec.n_heads());
  norm = register_module("norm", RmsNorm(d_model));

  AttentionOptions attn_options = AttentionOptionsFor(spec);
  attn_options.n_heads = attn_heads;
  attn_options.n_kv_heads = ParallelKvHeads(spec, attn_heads);
  attn_options.d_output = 0;
  attn = register_module("attn", Attention(attn_options));
  attn_out_norm = register_module("attn_out_norm", RmsNorm(attn_width));

  Mamba2Options ssm_options = Mamba2OptionsFor(spec, d_model - attn_width);
  ssm_options.d_output = 0;
  ssm = register_module("ssm", Mamba2Mixer(ssm_options));
  const int64_t ssm_width = ssm->OutputWidth();

  const double residual_std = ResidualInitStd(spec.n_layers());
  if (spec.hybrid().fuse() == "concat") {
    fuse_proj = register_parameter("fuse_proj", torch::empty({d_model, attn_width + ssm_width}));
    InitNormal(fuse_proj, residual_std);
  } else {
    attn_proj = register_parameter("attn_proj", torch::empty({d_model, attn_width}));
    ssm_proj = register_parameter("ssm_proj", torch::empty({d_model, ssm_width}));
    InitNormal(attn_proj, residual_std);
    InitNormal(ssm_proj, residual_std);
  }
  mlp_norm = register_module("mlp_norm", RmsNorm(d_model));
  mlp = register_module("mlp", SwiGluMlp(d_model, SwiGluHidden(spec), spec.n_layers()));
}

torch::Tensor ParallelBlockImpl::forward(torch::Tensor x, int64_t first_position,
                                         LayerCache* cache) {
  torch::Tensor h = norm(x);
  torch::Tensor attn_out = attn_out_norm(attn(h, first_position, cache));
  // The mixer ends in its gated RMSNorm: its output is already normalized.
  torch::Tensor ssm_out = ssm(h, cache);
  torch::Tensor fused;
  if (fuse_proj.defined()) {
    fused = ops::Linear(torch::cat({attn_out, ssm_out}, /*dim=*/-1), fuse_proj);
  } else {
    fused = 0.5 * (ops::Linear(attn_out, attn_proj) + ops::Linear(ssm_out, ssm_proj));
  }
  x = x + fused;
  return x + mlp(mlp_norm(x));
}

double ParallelBlockImpl::MacsPerToken(int64_t context) const {
  const AttentionOptions& o = attn->options();
  const double d = static_cast<double>(o.d_input);
  const double heads = static_cast<double>(o.n_heads);
  const double kv_heads = static_cast<double>(o.n_kv_heads);
  const double hd = static_cast<double>(o.head_dim);
  const double attn_width = heads * hd;
  const double ssm_width = static_cast<double>(ssm->OutputWidth());
  const double hidden = static_cast<double>(mlp->w_gate.size(0));
  return d * (heads + 2 * kv_heads) * hd                  // qkv projection
         + 2 * static_cast<double>(context) * heads * hd  // scores and values, dense window
         + ssm->MacsPerToken(context)                     // the whole mixer
         + d * (attn_width + ssm_width)                   // fusing projection(s)
         + 3 * d * hidden;                                // SwiGLU
}

HybridImpl::HybridImpl(const scalelab::v1::ModelSpec& spec)
    : d_model_(spec.d_model()),
      seq_len_(spec.seq_len()),
      vocab_size_(spec.vocab_size() > 0 ? spec.vocab_size() : 256) {
  const bool parallel = spec.hybrid().mode() == "parallel";
  kinds_ = parallel ? std::string(static_cast<size_t>(spec.n_layers()), 'P')
                    : SequentialLayerKinds(spec);
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(vocab_size_, d_model_));
  InitNormal(token_embedding_->weight, kInitStd);
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (char kind : kinds_) {
    if (kind == 'A') {
      layers_->push_back(TransformerBlock(spec));
    } else if (kind == 'M') {
      layers_->push_back(MambaBlock(spec));
    } else {
      layers_->push_back(ParallelBlock(spec));
    }
  }
  final_norm_ = register_module("final_norm", RmsNorm(d_model_));
}

torch::Tensor HybridImpl::Run(const torch::Tensor& tokens, int64_t first_position,
                              InferenceState* state) {
  torch::Tensor x = token_embedding_(tokens);
  for (size_t layer_idx = 0; layer_idx < layers_->size(); ++layer_idx) {
    LayerCache* cache = state == nullptr ? nullptr : &state->layers[layer_idx];
    switch (kinds_[layer_idx]) {
      case 'A':
        x = layers_->at<TransformerBlockImpl>(layer_idx).forward(x, first_position, cache);
        break;
      case 'M':
        x = layers_->at<MambaBlockImpl>(layer_idx).forward(x, cache);
        break;
      default:
        x = layers_->at<ParallelBlockImpl>(layer_idx).forward(x, first_position, cache);
    }
  }
  return ops::Linear(final_norm_(x), token_embedding_->weight);
}

torch::Tensor HybridImpl::forward(const torch::Tensor& tokens) {
  return Run(tokens, /*first_position=*/0, /*state=*/nullptr);
}

int64_t HybridImpl::NumNonEmbeddingParams() const {
  return NumParams() - token_embedding_->weight.numel();
}

double HybridImpl::FlopsPerToken() const {
  double macs = static_cast<double>(d_model_ * vocab_size_);
  for (size_t layer_idx = 0; layer_idx < layers_->size(); ++layer_idx) {
    switch (kinds_[layer_idx]) {
      case 'A':
        macs += layers_->at<TransformerBlockImpl>(layer_idx).MacsPerToken(seq_len_);
        break;
      case 'M':
        macs += layers_->at<MambaBlockImpl>(layer_idx).mixer->MacsPerToken(seq_len_);
        break;
      default:
        macs += layers_->at<ParallelBlockImpl>(layer_idx).MacsPerToken(seq_len_);
    }
  }
  return 6.0 * macs;
}

int64_t HybridImpl::MaxSeqLen() const { return kRotaryMaxSeqLen; }

ParamGroups HybridImpl::ParameterGroups() const {
  // The mixers' only 2-D parameters are in_proj and out_proj (the depthwise conv weight is 3-D),
  // so one rule sorts every layer kind.
  ParamGroups groups;
  const torch::Tensor& embedding = token_embedding_->weight;
  for (const torch::Tensor& parameter : parameters()) {
    if (parameter.dim() == 2 && !parameter.is_same(embedding)) {
      groups.decay.push_back(parameter);
    } else {
      groups.no_decay.push_back(parameter);
    }
  }
  return groups;
}

InferenceState HybridImpl::NewInferenceState(int64_t batch_size) const {
  InferenceState state;
  state.batch_size = batch_size;
  state.layers.resize(kinds_.size());
  return state;
}

absl::StatusOr<torch::Tensor> HybridImpl::ForwardStep(const torch::Tensor& tokens,
                                                      InferenceState& state) {
  if (absl::Status status = CheckStepArguments(tokens, state, MaxSeqLen()); !status.ok()) {
    return status;
  }
  torch::NoGradGuard no_grad;
  torch::Tensor logits = Run(tokens, state.position, &state);
  state.position += tokens.size(1);
  return logits;
}

std::shared_ptr<CausalLM> BuildHybrid(const scalelab::v1::ModelSpec& spec) {
  return std::make_shared<HybridImpl>(spec);
}

}  // namespace scalelab::model
