#include "model/transformer.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "model/families.h"
#include "model/layerskip.h"
#include "model/ops.h"

namespace scalelab::model {

AttentionOptions AttentionOptionsFor(const scalelab::v1::ModelSpec& spec) {
  AttentionOptions options;
  options.d_input = spec.d_model();
  options.n_heads = spec.n_heads();
  options.n_kv_heads = spec.n_kv_heads() > 0 ? spec.n_kv_heads() : spec.n_heads();
  options.head_dim = spec.d_model() / spec.n_heads();
  options.rope_theta = spec.rope_theta() > 0 ? spec.rope_theta() : 10000.0;
  options.d_output = spec.d_model();
  options.n_layers = spec.n_layers();
  return options;
}

absl::Status CheckStepArguments(const torch::Tensor& tokens, const InferenceState& state,
                                int64_t max_seq_len) {
  if (tokens.dim() != 2 || tokens.size(0) != state.batch_size || tokens.size(1) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ForwardStep: expected tokens [", state.batch_size, ", T >= 1], got ",
                     tokens.dim(), "-d tokens of ", tokens.numel(), " elements"));
  }
  if (state.position + tokens.size(1) > max_seq_len) {
    return absl::OutOfRangeError(absl::StrCat("ForwardStep: ", state.position, " + ",
                                              tokens.size(1), " tokens exceed the context of ",
                                              max_seq_len));
  }
  return absl::OkStatus();
}

void TruncateLayerCaches(InferenceState& state, int64_t begin, int64_t end, int64_t length) {
  for (int64_t layer_idx = begin; layer_idx < end; ++layer_idx) {
    LayerCache& cache = state.layers[static_cast<size_t>(layer_idx)];
    if (!cache.keys.defined() || cache.keys.size(2) <= length) continue;
    // A view: the next step's concatenation copies it anyway.
    cache.keys = cache.keys.narrow(2, 0, length);
    cache.values = cache.values.narrow(2, 0, length);
  }
}

namespace {

// x after `block`, with each row (sample) skipping the block with probability `rate`: a skipped
// row passes unchanged. Only the kept rows are computed, so dropped layers save their compute.
torch::Tensor DropBlockPerSample(TransformerBlockImpl& block, const torch::Tensor& x, double rate) {
  const torch::Tensor keep = torch::rand({x.size(0)}, x.options().dtype(torch::kFloat32)).ge(rate);
  const torch::Tensor kept_rows = keep.nonzero().squeeze(1);
  const int64_t kept = kept_rows.size(0);
  if (kept == x.size(0)) return block.forward(x, /*first_position=*/0);
  if (kept == 0) return x;
  const torch::Tensor out = block.forward(x.index_select(0, kept_rows), /*first_position=*/0);
  return x.index_copy(0, kept_rows, out.to(x.scalar_type()));
}

}  // namespace

TransformerBlockImpl::TransformerBlockImpl(const scalelab::v1::ModelSpec& spec) {
  attn_norm = register_module("attn_norm", RmsNorm(spec.d_model()));
  attn = register_module("attn", Attention(AttentionOptionsFor(spec)));
  mlp_norm = register_module("mlp_norm", RmsNorm(spec.d_model()));
  mlp = register_module("mlp", SwiGluMlp(spec.d_model(), SwiGluHidden(spec), spec.n_layers()));
}

torch::Tensor TransformerBlockImpl::forward(torch::Tensor x, int64_t first_position,
                                            LayerCache* cache) {
  x = x + attn(attn_norm(x), first_position, cache);
  return x + mlp(mlp_norm(x));
}

double TransformerBlockImpl::MacsPerToken(int64_t context) const {
  const AttentionOptions& o = attn->options();
  const double d = static_cast<double>(o.d_input);
  const double heads = static_cast<double>(o.n_heads);
  const double kv_heads = static_cast<double>(o.n_kv_heads);
  const double hd = static_cast<double>(o.head_dim);
  const double hidden = static_cast<double>(mlp->w_gate.size(0));
  return d * (heads + 2 * kv_heads) * hd                  // qkv projection
         + heads * hd * d                                 // out projection
         + 2 * static_cast<double>(context) * heads * hd  // scores and values, dense window
         + 3 * d * hidden;                                // w_gate, w_up, w_down
}

TransformerImpl::TransformerImpl(const scalelab::v1::ModelSpec& spec)
    : d_model_(spec.d_model()),
      n_layers_(spec.n_layers()),
      seq_len_(spec.seq_len()),
      vocab_size_(spec.vocab_size() > 0 ? spec.vocab_size() : 256) {
  token_embedding_ =
      register_module("token_embedding", torch::nn::Embedding(vocab_size_, d_model_));
  InitNormal(token_embedding_->weight, kInitStd);
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t layer_idx = 0; layer_idx < n_layers_; ++layer_idx) {
    blocks_->push_back(TransformerBlock(spec));
  }
  final_norm_ = register_module("final_norm", RmsNorm(d_model_));
}

torch::Tensor TransformerImpl::Run(const torch::Tensor& tokens, int64_t first_position,
                                   InferenceState* state) {
  return Head(RunLayers(Embed(tokens), first_position, 0, n_layers_, state));
}

torch::Tensor TransformerImpl::Embed(const torch::Tensor& tokens) {
  return token_embedding_(tokens);
}

torch::Tensor TransformerImpl::RunLayers(torch::Tensor x, int64_t first_position, int64_t begin,
                                         int64_t end, InferenceState* state) {
  for (int64_t layer_idx = begin; layer_idx < end; ++layer_idx) {
    LayerCache* cache = state == nullptr ? nullptr : &state->layers[static_cast<size_t>(layer_idx)];
    x = blocks_->at<TransformerBlockImpl>(static_cast<size_t>(layer_idx))
            .forward(x, first_position, cache);
  }
  return x;
}

torch::Tensor TransformerImpl::Head(const torch::Tensor& hidden) {
  // Tied head: logits are similarities with the token embeddings, which halves the parameters a
  // byte-level model spends on its vocabulary and trains both ends of the network together.
  return ops::Linear(final_norm_(hidden), token_embedding_->weight);
}

torch::Tensor TransformerImpl::LayerSkipLoss(const torch::Tensor& inputs,
                                             const torch::Tensor& targets,
                                             const scalelab::v1::LayerSkipSpec& spec, int64_t step,
                                             int64_t total_steps) {
  const std::vector<double> rates =
      LayerDropoutRates(n_layers_, is_training() ? spec.max_dropout() : 0.0);
  const std::vector<double> weights = EarlyExitWeights(n_layers_, spec, step, total_steps);
  const torch::Tensor flat_targets = targets.reshape({-1});
  torch::Tensor x = Embed(inputs);
  torch::Tensor loss;
  for (int64_t layer_idx = 0; layer_idx < n_layers_; ++layer_idx) {
    TransformerBlockImpl& block = blocks_->at<TransformerBlockImpl>(static_cast<size_t>(layer_idx));
    const double rate = rates[static_cast<size_t>(layer_idx)];
    x = rate > 0 ? DropBlockPerSample(block, x, rate) : block.forward(x, /*first_position=*/0);
    const double weight = weights[static_cast<size_t>(layer_idx)];
    if (weight == 0) continue;
    // Every exit shares the final norm and the head, so the early layers learn to speak the
    // last layer's language (what lets them draft for it).
    const torch::Tensor logits = Head(x);
    torch::Tensor term = ops::CrossEntropy(logits.view({-1, logits.size(-1)}), flat_targets);
    if (weight != 1) term = term * weight;
    loss = loss.defined() ? loss + term : term;
  }
  return loss;
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens) {
  return Run(tokens, /*first_position=*/0, /*state=*/nullptr);
}

int64_t TransformerImpl::NumNonEmbeddingParams() const {
  return NumParams() - token_embedding_->weight.numel();
}

double TransformerImpl::FlopsPerToken() const {
  double macs = static_cast<double>(d_model_ * vocab_size_);
  for (const auto& module : *blocks_) {
    macs += module->as<TransformerBlockImpl>()->MacsPerToken(seq_len_);
  }
  return 6.0 * macs;
}

ParamGroups TransformerImpl::ParameterGroups() const {
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

InferenceState TransformerImpl::NewInferenceState(int64_t batch_size) const {
  InferenceState state;
  state.batch_size = batch_size;
  state.layers.resize(static_cast<size_t>(n_layers_));
  return state;
}

absl::StatusOr<torch::Tensor> TransformerImpl::ForwardStep(const torch::Tensor& tokens,
                                                           InferenceState& state) {
  if (absl::Status status = CheckStepArguments(tokens, state, MaxSeqLen()); !status.ok()) {
    return status;
  }
  torch::NoGradGuard no_grad;
  torch::Tensor logits = Run(tokens, state.position, &state);
  state.position += tokens.size(1);
  return logits;
}

std::shared_ptr<CausalLM> BuildTransformer(const scalelab::v1::ModelSpec& spec) {
  return std::make_shared<TransformerImpl>(spec);
}

}  // namespace scalelab::model
