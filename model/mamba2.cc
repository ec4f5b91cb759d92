#include "model/mamba2.h"

#include <cmath>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/ops.h"
#include "model/ssd.h"

namespace scalelab::model {
namespace {

using torch::indexing::Slice;

// A recurrent model has no trained context limit; the cap only bounds what a caller may ask
// ForwardStep for (a state of fixed size, whatever the length).
constexpr int64_t kMaxSeqLen = 65536;

}  // namespace

Mamba2Options Mamba2OptionsFor(const scalelab::v1::ModelSpec& spec, int64_t width) {
  Mamba2Options options;
  options.d_input = spec.d_model();
  options.head_dim = spec.ssm().head_dim();
  options.d_state = spec.ssm().d_state();
  options.d_conv = spec.ssm().d_conv();
  options.chunk = spec.ssm().chunk();
  const int64_t raw = spec.ssm().expand() * width;
  options.d_inner = (raw + options.head_dim - 1) / options.head_dim * options.head_dim;
  options.d_output = spec.d_model();
  options.n_layers = spec.n_layers();
  return options;
}

Mamba2MixerImpl::Mamba2MixerImpl(const Mamba2Options& options)
    : options_(options),
      n_heads_(options.d_inner / options.head_dim),
      conv_channels_(options.d_inner + 2 * options.d_state) {
  const int64_t in_width = options.d_inner + conv_channels_ + n_heads_;
  in_proj = register_parameter("in_proj", torch::empty({in_width, options.d_input}));
  conv_weight =
      register_parameter("conv_weight", torch::empty({conv_channels_, 1, options.d_conv}));
  conv_bias = register_parameter("conv_bias", torch::empty({conv_channels_}));
  a_log = register_parameter("a_log", torch::empty({n_heads_}));
  dt_bias = register_parameter("dt_bias", torch::empty({n_heads_}));
  d_skip = register_parameter("d_skip", torch::ones({n_heads_}));
  norm = register_module("norm", RmsNorm(options.d_inner));
  if (options.d_output > 0) {
    out_proj = register_parameter("out_proj", torch::empty({options.d_output, options.d_inner}));
    InitNormal(out_proj, ResidualInitStd(options.n_layers));
  }
  InitNormal(in_proj, kInitStd);

  torch::NoGradGuard no_grad;
  // torch::nn::Conv1d's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, with
  // fan_in = d_conv for a depthwise kernel.
  const double bound = 1.0 / std::sqrt(static_cast<double>(options.d_conv));
  conv_weight.uniform_(-bound, bound);
  conv_bias.uniform_(-bound, bound);
  // The Mamba-2 reference init: decay rates spread over [1, 16] and step sizes log-uniform over
  // [1e-3, 1e-1], so heads start with memories from ~10 to ~10^4 tokens.
  a_log.copy_(torch::empty({n_heads_}).uniform_(1.0, 16.0).log());
  torch::Tensor dt =
      torch::exp(torch::empty({n_heads_}).uniform_(std::log(1e-3), std::log(1e-1))).clamp_min(1e-4);
  dt_bias.copy_(dt + torch::log(-torch::expm1(-dt)));  // inverse softplus
}

int64_t Mamba2MixerImpl::OutputWidth() const {
  return options_.d_output > 0 ? options_.d_output : options_.d_inner;
}

double Mamba2MixerImpl::MacsPerToken(int64_t tokens) const {
  const int64_t in_width = options_.d_inner + conv_channels_ + n_heads_;
  const int64_t per_token = options_.d_input * in_width + conv_channels_ * options_.d_conv +
                            (options_.d_output > 0 ? options_.d_inner * options_.d_output : 0);
  const int64_t scan = ssd::ChunkedScanMacs(1, tokens, n_heads_, options_.head_dim,
                                            options_.d_state, options_.chunk);
  return static_cast<double>(per_token) + static_cast<double>(scan) / static_cast<double>(tokens);
}

torch::Tensor Mamba2MixerImpl::forward(const torch::Tensor& x, LayerCache* cache) {
  const int64_t batch = x.size(0), tokens = x.size(1);
  const int64_t d_inner = options_.d_inner, d_state = options_.d_state;
  const int64_t history = options_.d_conv - 1;
  torch::Tensor projected = ops::Linear(x, in_proj);
  torch::Tensor z = projected.index({"...", Slice(0, d_inner)});
  torch::Tensor xbc = projected.index({"...", Slice(d_inner, d_inner + conv_channels_)});
  torch::Tensor dt_raw =
      projected.index({"...", Slice(d_inner + conv_channels_, torch::indexing::None)});

  // Causal depthwise conv: left-pad with the previous d_conv - 1 inputs (zeros at the start), so
  // output t sees inputs t - d_conv + 1 .. t.
  torch::Tensor channels_first = xbc.transpose(1, 2);  // [B, C, T]
  torch::Tensor previous;
  if (cache != nullptr && cache->conv_state.defined()) {
    previous = cache->conv_state.to(channels_first.dtype());
  } else {
    previous = torch::zeros({batch, conv_channels_, history}, channels_first.options());
  }
  torch::Tensor padded = torch::cat({previous, channels_first}, /*dim=*/2);
  if (cache != nullptr) {
    cache->conv_state =
        padded.index({Slice(), Slice(), Slice(tokens, torch::indexing::None)}).contiguous();
  }
  ops::AddMacs(batch * tokens * conv_channels_ * options_.d_conv);
  const std::vector<int64_t> one = {1};
  const std::vector<int64_t> none = {0};
  torch::Tensor conv = torch::conv1d(padded, conv_weight, conv_bias, /*stride=*/one,
                                     /*padding=*/none, /*dilation=*/one, /*groups=*/conv_channels_);
  torch::Tensor activated = torch::silu(conv).transpose(1, 2);  // [B, T, C]

  torch::Tensor xs = activated.index({"...", Slice(0, d_inner)})
                         .reshape({batch, tokens, n_heads_, options_.head_dim});
  torch::Tensor b = activated.index({"...", Slice(d_inner, d_inner + d_state)});
  torch::Tensor c = activated.index({"...", Slice(d_inner + d_state, torch::indexing::None)});
  torch::Tensor dt = torch::softplus(dt_raw + dt_bias);
  torch::Tensor a = -torch::exp(a_log);

  torch::Tensor y;
  if (cache == nullptr) {
    y = ssd::ScanChunked(xs, dt, a, b, c, options_.chunk, /*initial_state=*/{}, nullptr);
  } else {
    if (!cache->ssm_state.defined()) {
      cache->ssm_state = torch::zeros(
          {batch, n_heads_, options_.head_dim, d_state},
          x.options().dtype(x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat));
    }
    if (tokens == 1) {
      y = ssd::Step(xs.select(1, 0), dt.select(1, 0), a, b.select(1, 0), c.select(1, 0),
                    cache->ssm_state)
              .unsqueeze(1);
    } else {
      torch::Tensor final_state;
      y = ssd::ScanChunked(xs, dt, a, b, c, options_.chunk, cache->ssm_state, &final_state);
      cache->ssm_state = final_state;
    }
  }
  y = y + xs * d_skip.unsqueeze(-1);
  y = y.reshape({batch, tokens, d_inner});
  // Gated RMSNorm (the reference's norm_before_gate=False): gate first, then normalize.
  y = norm(y * torch::silu(z));
  return options_.d_output > 0 ? ops::Linear(y, out_proj) : y;
}

namespace {

class Mamba2BlockImpl : public torch::nn::Module {
 public:
  explicit Mamba2BlockImpl(const Mamba2Options& options) {
    norm = register_module("norm", RmsNorm(options.d_input));
    mixer = register_module("mixer", Mamba2Mixer(options));
  }
  torch::Tensor forward(const torch::Tensor& x, LayerCache* cache) {
    return x + mixer(norm(x), cache);
  }

  RmsNorm norm{nullptr};
  Mamba2Mixer mixer{nullptr};
};
TORCH_MODULE(Mamba2Block);

// The "mamba2" family: token embedding, n_layers residual Mamba-2 blocks, final RMSNorm, output
// head tied to the embedding.
class Mamba2LM : public CausalLM {
 public:
  explicit Mamba2LM(const scalelab::v1::ModelSpec& spec)
      : options_(Mamba2OptionsFor(spec, spec.d_model())),
        n_layers_(spec.n_layers()),
        seq_len_(spec.seq_len()),
        vocab_size_(spec.vocab_size() > 0 ? spec.vocab_size() : 256) {
    embedding_ = register_parameter("embedding", torch::empty({vocab_size_, options_.d_input}));
    InitNormal(embedding_, kInitStd);
    blocks_ = register_module("blocks", torch::nn::ModuleList());
    for (int64_t layer_idx = 0; layer_idx < n_layers_; ++layer_idx) {
      blocks_->push_back(Mamba2Block(options_));
    }
    final_norm_ = register_module("final_norm", RmsNorm(options_.d_input));
  }

  torch::Tensor forward(const torch::Tensor& tokens) override { return Run(tokens, nullptr); }

  int64_t NumNonEmbeddingParams() const override { return NumParams() - embedding_.numel(); }

  // 6 x the forward multiply-adds per token at T = seq_len of everything ops:: counts: per layer
  // in_proj, the depthwise conv, the chunked scan (ssd::ChunkedScanMacs) and out_proj; then the
  // tied output head (vocab * d_model). No attention-score term: the scan's own cost replaces it.
  double FlopsPerToken() const override {
    const Mamba2MixerImpl& mixer = *blocks_->at<Mamba2BlockImpl>(0).mixer;
    return 6.0 * (static_cast<double>(n_layers_) * mixer.MacsPerToken(seq_len_) +
                  static_cast<double>(vocab_size_ * options_.d_input));
  }

  int64_t MaxSeqLen() const override { return kMaxSeqLen; }

  ParamGroups ParameterGroups() const override {
    ParamGroups groups;
    for (const torch::Tensor& parameter : parameters()) {
      if (parameter.dim() == 2 && !parameter.is_same(embedding_)) {
        groups.decay.push_back(parameter);
      } else {
        groups.no_decay.push_back(parameter);
      }
    }
    return groups;
  }

  InferenceState NewInferenceState(int64_t batch_size) const override {
    InferenceState state;
    state.batch_size = batch_size;
    state.layers.resize(static_cast<size_t>(n_layers_));
    return state;
  }

  absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor& tokens,
                                            InferenceState& state) override {
    if (tokens.dim() != 2 || tokens.size(0) != state.batch_size || tokens.size(1) < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("ForwardStep: expected tokens [", state.batch_size, ", T >= 1], got ",
                       tokens.dim(), "-d tokens of ", tokens.numel(), " elements"));
    }
    const int64_t time = tokens.size(1);
    if (state.position + time > kMaxSeqLen) {
      return absl::OutOfRangeError(absl::StrCat("ForwardStep: ", state.position, " + ", time,
                                                " tokens exceed the cap of ", kMaxSeqLen));
    }
    if (state.layers.size() != static_cast<size_t>(n_layers_)) {
      return absl::InvalidArgumentError(absl::StrCat("ForwardStep: state has ", state.layers.size(),
                                                     " layers, the model ", n_layers_));
    }
    torch::NoGradGuard no_grad;
    torch::Tensor logits = Run(tokens, &state);
    state.position += time;
    return logits;
  }

 private:
  torch::Tensor Run(const torch::Tensor& tokens, InferenceState* state) {
    torch::Tensor x = torch::embedding(embedding_, tokens);
    for (size_t layer_idx = 0; layer_idx < blocks_->size(); ++layer_idx) {
      LayerCache* cache = state == nullptr ? nullptr : &state->layers[layer_idx];
      x = blocks_->at<Mamba2BlockImpl>(layer_idx).forward(x, cache);
    }
    return ops::Linear(final_norm_(x), embedding_);
  }

  Mamba2Options options_;
  int64_t n_layers_;
  int64_t seq_len_;
  int64_t vocab_size_;
  torch::Tensor embedding_;
  torch::nn::ModuleList blocks_{nullptr};
  RmsNorm final_norm_{nullptr};
};

}  // namespace

std::shared_ptr<CausalLM> BuildMamba2(const scalelab::v1::ModelSpec& spec) {
  return std::make_shared<Mamba2LM>(spec);
}

}  // namespace scalelab::model
