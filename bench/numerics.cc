// scalelab-numerics: how far the attention and scan implementations drift from an fp64 golden
// value, and how far two short trainings that differ only in their numerics drift apart, after
// the method of Golden et al. 2024 ("Is Flash Attention Stable?"):
//   attention  ops::reference::CausalAttention and ops::CausalAttention on fp32 and bf16 inputs
//              (GQA) against the reference run in fp64 on the same (rounded) inputs: max and mean
//              absolute deviation of the outputs, by sequence length;
//   scan       the SSD scans of model/ssd.h (naive and chunked) the same way;
//   training   the 1-D Wasserstein distance between the final weights of two trainings of a tiny
//              GQA transformer (same seed, same data) that differ only in ops::SetImpl or in
//              precision (bf16 CPU autocast), and of two identical runs: the noise floor.
// Prints one JSON object per line on stdout. Usage:
//   build/bin/scalelab-numerics [--studies=attention,scan,training] [--seq_lens=128,512,2048]
//                               [--steps=50] [--threads=2]

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "bench/wasserstein.h"
#include "model/ops.h"
#include "model/ssd.h"

ABSL_FLAG(std::vector<std::string>, studies,
          std::vector<std::string>({"attention", "scan", "training"}),
          "which studies to run: attention, scan, training");
ABSL_FLAG(std::vector<std::string>, seq_lens, std::vector<std::string>({"128", "512", "2048"}),
          "sequence lengths of the attention and scan studies");
ABSL_FLAG(int, steps, 50, "optimizer steps of each training in the training study");
ABSL_FLAG(int, threads, 2, "intra-op threads (at::set_num_threads)");

namespace scalelab::bench {
namespace {

namespace ops = scalelab::model::ops;

const char* DtypeName(torch::ScalarType dtype) {
  return dtype == torch::kBFloat16 ? "bf16" : dtype == torch::kFloat ? "fp32" : "fp64";
}

// |output - golden| over all elements, in fp64.
struct Deviation {
  double max_abs = 0;
  double mean_abs = 0;
  double golden_mean_abs = 0;  // The scale the deviations are relative to.
};

Deviation Deviate(const torch::Tensor& output, const torch::Tensor& golden) {
  const torch::Tensor diff = (output.to(torch::kDouble) - golden).abs();
  return {diff.max().item<double>(), diff.mean().item<double>(),
          golden.abs().mean().item<double>()};
}

void PrintDeviation(const std::string& study, const std::string& impl, torch::ScalarType dtype,
                    int64_t seq, const std::string& shape, const Deviation& deviation,
                    double seconds) {
  std::printf(
      "{\"study\":\"%s\",\"impl\":\"%s\",\"dtype\":\"%s\",\"seq\":%lld,%s,\"max_abs\":%.6g,"
      "\"mean_abs\":%.6g,\"golden_mean_abs\":%.6g,\"seconds\":%.3f}\n",
      study.c_str(), impl.c_str(), DtypeName(dtype), static_cast<long long>(seq), shape.c_str(),
      deviation.max_abs, deviation.mean_abs, deviation.golden_mean_abs, seconds);
  std::fflush(stdout);
}

void PrintError(const std::string& study, const std::string& what, const std::string& message) {
  std::printf("{\"study\":\"%s\",\"impl\":\"%s\",\"error\":\"%s\"}\n", study.c_str(), what.c_str(),
              absl::StrReplaceAll(message.substr(0, 200), {{"\"", "'"}, {"\n", " "}}).c_str());
  std::fflush(stdout);
}

double SecondsSince(const std::chrono::steady_clock::time_point& start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- attention ----

void AttentionStudy(const std::vector<int64_t>& seq_lens) {
  constexpr int64_t kBatch = 1, kHeads = 4, kKvHeads = 2, kHeadDim = 32;
  const std::string shape =
      absl::StrFormat("\"batch\":%d,\"heads\":%d,\"kv_heads\":%d,\"head_dim\":%d", kBatch, kHeads,
                      kKvHeads, kHeadDim);
  torch::NoGradGuard no_grad;
  for (const int64_t seq : seq_lens) {
    torch::manual_seed(1234 + seq);
    const torch::Tensor q = torch::randn({kBatch, kHeads, seq, kHeadDim});
    const torch::Tensor k = torch::randn({kBatch, kKvHeads, seq, kHeadDim});
    const torch::Tensor v = torch::randn({kBatch, kKvHeads, seq, kHeadDim});
    for (const torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
      // The golden value sees the inputs each implementation sees: rounded to `dtype`, so what
      // is measured is the arithmetic, not the input rounding.
      const torch::Tensor qd = q.to(dtype), kd = k.to(dtype), vd = v.to(dtype);
      const torch::Tensor golden = ops::reference::CausalAttention(
          qd.to(torch::kDouble), kd.to(torch::kDouble), vd.to(torch::kDouble), 0);
      for (const bool reference : {true, false}) {
        const char* impl = reference ? "reference" : "ops";
        try {
          const auto start = std::chrono::steady_clock::now();
          const torch::Tensor out = reference ? ops::reference::CausalAttention(qd, kd, vd, 0)
                                              : ops::CausalAttention(qd, kd, vd, 0);
          PrintDeviation("attention", impl, dtype, seq, shape, Deviate(out, golden),
                         SecondsSince(start));
        } catch (const c10::Error& error) {
          PrintError("attention", impl, error.what_without_backtrace());
        }
      }
    }
  }
}

// ---- scan ----

void ScanStudy(const std::vector<int64_t>& seq_lens) {
  constexpr int64_t kBatch = 1, kHeads = 4, kHeadDim = 16, kState = 16, kChunk = 64;
  const std::string shape =
      absl::StrFormat("\"batch\":%d,\"heads\":%d,\"head_dim\":%d,\"d_state\":%d,\"chunk\":%d",
                      kBatch, kHeads, kHeadDim, kState, kChunk);
  torch::NoGradGuard no_grad;
  for (const int64_t seq : seq_lens) {
    torch::manual_seed(4321 + seq);
    const torch::Tensor x = torch::randn({kBatch, seq, kHeads, kHeadDim});
    // dt in Mamba-2's init range (softplus'ed, 1e-3 .. 1e-1), A = -exp(A_log) with A in [1, 16].
    const torch::Tensor dt = torch::exp(
        torch::rand({kBatch, seq, kHeads}) * (std::log(0.1) - std::log(0.001)) + std::log(0.001));
    const torch::Tensor a = -torch::rand({kHeads}) * 15 - 1;
    const torch::Tensor b = torch::randn({kBatch, seq, kState});
    const torch::Tensor c = torch::randn({kBatch, seq, kState});
    for (const torch::ScalarType dtype : {torch::kFloat, torch::kBFloat16}) {
      const torch::Tensor xd = x.to(dtype), dtd = dt.to(dtype), bd = b.to(dtype), cd = c.to(dtype);
      // a stays fp32: it is a per-head parameter, kept in full precision as Mamba-2 does.
      torch::Tensor golden;
      try {
        golden = model::ssd::ScanNaive(xd.to(torch::kDouble), dtd.to(torch::kDouble),
                                       a.to(torch::kDouble), bd.to(torch::kDouble),
                                       cd.to(torch::kDouble), torch::Tensor(), nullptr);
      } catch (const c10::Error& error) {
        PrintError("scan", "golden", error.what_without_backtrace());
        continue;
      }
      for (const bool chunked : {false, true}) {
        const char* impl = chunked ? "chunked" : "naive";
        try {
          const auto start = std::chrono::steady_clock::now();
          const torch::Tensor y =
              chunked
                  ? model::ssd::ScanChunked(xd, dtd, a, bd, cd, kChunk, torch::Tensor(), nullptr)
                  : model::ssd::ScanNaive(xd, dtd, a, bd, cd, torch::Tensor(), nullptr);
          PrintDeviation("scan", impl, dtype, seq, shape, Deviate(y, golden), SecondsSince(start));
        } catch (const c10::Error& error) {
          PrintError("scan", impl, error.what_without_backtrace());
        }
      }
    }
  }
}

// ---- training ----

// A tiny pre-norm GQA transformer written with the ops layer only, so that ops::SetImpl switches
// every op it runs: RMSNorm, rotary, causal attention, SwiGLU, linear, cross-entropy.
struct TinyConfig {
  int64_t vocab = 64, d_model = 32, n_layers = 2, n_heads = 4, n_kv_heads = 2, d_ff = 64;
  int64_t seq = 32, batch = 8;
  int64_t HeadDim() const { return d_model / n_heads; }
};

class TinyLm : public torch::nn::Module {
 public:
  explicit TinyLm(const TinyConfig& config) : config_(config) {
    const int64_t d = config.d_model, hd = config.HeadDim();
    auto normal = [&](const std::string& name, std::vector<int64_t> sizes, double std) {
      return register_parameter(name, torch::randn(sizes) * std);
    };
    embed_ = normal("embed", {config.vocab, d}, 0.02);
    final_norm_ = register_parameter("final_norm", torch::ones({d}));
    for (int64_t layer = 0; layer < config.n_layers; ++layer) {
      const std::string prefix = "l" + std::to_string(layer) + "_";
      Layer l;
      l.attn_norm = register_parameter(prefix + "attn_norm", torch::ones({d}));
      l.wq = normal(prefix + "wq", {config.n_heads * hd, d}, 0.02);
      l.wk = normal(prefix + "wk", {config.n_kv_heads * hd, d}, 0.02);
      l.wv = normal(prefix + "wv", {config.n_kv_heads * hd, d}, 0.02);
      l.wo =
          normal(prefix + "wo", {d, config.n_heads * hd}, 0.02 / std::sqrt(2.0 * config.n_layers));
      l.mlp_norm = register_parameter(prefix + "mlp_norm", torch::ones({d}));
      l.w_gate = normal(prefix + "w_gate", {config.d_ff, d}, 0.02);
      l.w_up = normal(prefix + "w_up", {config.d_ff, d}, 0.02);
      l.w_down =
          normal(prefix + "w_down", {d, config.d_ff}, 0.02 / std::sqrt(2.0 * config.n_layers));
      layers_.push_back(l);
    }
  }

  // tokens [B, T] -> logits [B * T, vocab].
  torch::Tensor forward(const torch::Tensor& tokens) {
    const int64_t batch = tokens.size(0), seq = tokens.size(1), hd = config_.HeadDim();
    torch::Tensor cos, sin;
    ops::RotaryTables(0, seq, hd, 10000.0, tokens.device(), &cos, &sin);
    torch::Tensor x = embed_.index_select(0, tokens.reshape({-1})).view({batch, seq, -1});
    for (const Layer& l : layers_) {
      torch::Tensor h = ops::RmsNorm(x, l.attn_norm, 1e-5);
      auto heads = [&](const torch::Tensor& w, int64_t n) {
        return ops::Linear(h, w).view({batch, seq, n, hd}).transpose(1, 2);
      };
      const torch::Tensor q = ops::ApplyRotary(heads(l.wq, config_.n_heads), cos, sin);
      const torch::Tensor k = ops::ApplyRotary(heads(l.wk, config_.n_kv_heads), cos, sin);
      const torch::Tensor v = heads(l.wv, config_.n_kv_heads);
      const torch::Tensor attended =
          ops::CausalAttention(q, k, v, 0).transpose(1, 2).reshape({batch, seq, -1});
      x = x + ops::Linear(attended, l.wo);
      h = ops::RmsNorm(x, l.mlp_norm, 1e-5);
      x = x + ops::Linear(ops::SwiGlu(ops::Linear(h, l.w_gate), ops::Linear(h, l.w_up)), l.w_down);
    }
    x = ops::RmsNorm(x, final_norm_, 1e-5);
    return ops::Linear(x, embed_).view({batch * seq, -1});  // Tied output head.
  }

 private:
  struct Layer {
    torch::Tensor attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down;
  };
  TinyConfig config_;
  torch::Tensor embed_, final_norm_;
  std::vector<Layer> layers_;
};

struct TrainResult {
  std::vector<double> weights;  // Every parameter, flattened, in registration order.
  double final_loss = 0;
  double seconds = 0;
};

// Batches of a learnable stream: arithmetic sequences mod vocab with a stride of 1 or 3 per
// sequence, so the next token depends on the last two (attention has something to do) and the
// loss falls well below log(vocab) within 50 steps.
torch::Tensor MakeBatch(const TinyConfig& config, int64_t step) {
  torch::manual_seed(100000 + step);
  const torch::Tensor start = torch::randint(config.vocab, {config.batch, 1}, torch::kLong);
  const torch::Tensor stride = torch::randint(2, {config.batch, 1}, torch::kLong) * 2 + 1;
  const torch::Tensor offsets = torch::arange(config.seq + 1, torch::kLong).unsqueeze(0);
  return (start + stride * offsets).remainder(config.vocab);
}

TrainResult Train(const TinyConfig& config, int steps, ops::Impl impl, bool bf16_autocast) {
  const ops::Impl previous = ops::CurrentImpl();
  ops::SetImpl(impl);
  torch::manual_seed(7);
  TinyLm model(config);
  torch::optim::AdamW optimizer(model.parameters(), torch::optim::AdamWOptions(1e-2));
  TrainResult result;
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; step < steps; ++step) {
    const torch::Tensor batch = MakeBatch(config, step);
    const torch::Tensor inputs = batch.narrow(1, 0, config.seq);
    const torch::Tensor targets = batch.narrow(1, 1, config.seq).reshape({-1});
    optimizer.zero_grad();
    torch::Tensor logits;
    if (bf16_autocast) {
      at::autocast::set_autocast_cpu_dtype(torch::kBFloat16);
      at::autocast::set_cpu_enabled(true);
      logits = model.forward(inputs);
      at::autocast::set_cpu_enabled(false);
      at::autocast::clear_cache();
    } else {
      logits = model.forward(inputs);
    }
    const torch::Tensor loss = ops::CrossEntropy(logits.to(torch::kFloat), targets);
    loss.backward();
    optimizer.step();
    result.final_loss = loss.item<double>();
  }
  result.seconds = SecondsSince(start);
  for (const torch::Tensor& parameter : model.parameters()) {
    const torch::Tensor flat = parameter.detach().to(torch::kDouble).contiguous().view({-1});
    result.weights.insert(result.weights.end(), flat.data_ptr<double>(),
                          flat.data_ptr<double>() + flat.numel());
  }
  ops::SetImpl(previous);
  return result;
}

void TrainingStudy(int steps) {
  const TinyConfig config;
  struct Variant {
    const char* name;
    ops::Impl impl;
    bool bf16;
  };
  const Variant baseline{"fp32_fast", ops::Impl::kFast, false};
  const Variant others[] = {{"fp32_fast_again", ops::Impl::kFast, false},
                            {"fp32_reference", ops::Impl::kReference, false},
                            {"bf16_autocast_fast", ops::Impl::kFast, true}};
  const TrainResult base = Train(config, steps, baseline.impl, baseline.bf16);
  std::vector<double> init;
  {
    torch::manual_seed(7);
    const TinyLm untrained(config);
    for (const torch::Tensor& parameter : untrained.parameters()) {
      const torch::Tensor flat = parameter.detach().to(torch::kDouble).contiguous().view({-1});
      init.insert(init.end(), flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
    }
  }
  // How far training moved the weights: the scale the other distances are read against.
  const auto moved = Wasserstein1(init, base.weights);
  std::printf(
      "{\"study\":\"training\",\"a\":\"init\",\"b\":\"%s\",\"steps\":%d,\"params\":%zu,"
      "\"w1\":%.6g,\"loss_b\":%.6g,\"seconds_b\":%.3f}\n",
      baseline.name, steps, base.weights.size(), moved.ok() ? *moved : NAN, base.final_loss,
      base.seconds);
  std::fflush(stdout);
  for (const Variant& variant : others) {
    try {
      const TrainResult other = Train(config, steps, variant.impl, variant.bf16);
      const auto w1 = Wasserstein1(base.weights, other.weights);
      double max_abs = 0;
      for (size_t idx = 0; idx < base.weights.size(); ++idx) {
        max_abs = std::max(max_abs, std::fabs(base.weights[idx] - other.weights[idx]));
      }
      std::printf(
          "{\"study\":\"training\",\"a\":\"%s\",\"b\":\"%s\",\"steps\":%d,\"w1\":%.6g,"
          "\"max_abs_weight_diff\":%.6g,\"loss_a\":%.6g,\"loss_b\":%.6g,\"seconds_b\":%.3f}\n",
          baseline.name, variant.name, steps, w1.ok() ? *w1 : NAN, max_abs, base.final_loss,
          other.final_loss, other.seconds);
      std::fflush(stdout);
    } catch (const c10::Error& error) {
      PrintError("training", variant.name, error.what_without_backtrace());
    }
  }
}

}  // namespace
}  // namespace scalelab::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  std::vector<int64_t> seq_lens;
  for (const std::string& text : absl::GetFlag(FLAGS_seq_lens)) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value) || value < 1) {
      std::fprintf(stderr, "--seq_lens: expected positive integers, got \"%s\"\n", text.c_str());
      return 2;
    }
    seq_lens.push_back(value);
  }
  if (absl::GetFlag(FLAGS_steps) < 1) {
    std::fprintf(stderr, "--steps: expected a positive integer, got %d\n",
                 absl::GetFlag(FLAGS_steps));
    return 2;
  }
  for (const std::string& study : absl::GetFlag(FLAGS_studies)) {
    if (study == "attention") {
      scalelab::bench::AttentionStudy(seq_lens);
    } else if (study == "scan") {
      scalelab::bench::ScanStudy(seq_lens);
    } else if (study == "training") {
      scalelab::bench::TrainingStudy(absl::GetFlag(FLAGS_steps));
    } else {
      std::fprintf(stderr, "--studies: expected attention, scan or training, got \"%s\"\n",
                   study.c_str());
      return 2;
    }
  }
  return 0;
}
