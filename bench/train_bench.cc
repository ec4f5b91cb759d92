// Training throughput of scalelab's model runtime against a PyTorch peer, the fused CPU ops
// against their reference compositions, and the model families' training and generation speed.
//
//   build/bin/scalelab-train-bench --peer=bench/peer_train.py [--python=python3] [--threads=2]
//       [--steps=20] [--warmup=3] [--configs=c1,c2,c3] [--ops] [--families]
//
//   build/bin/scalelab-train-bench --throughput --device=cuda --precision=bf16 --configs=gpt124m
//       [--batch=0] [--steps=30] [--warmup=5] [--time_budget_s=120] [--matmul_tflops=0]
//
// Prints one JSON line per measurement:
//   {"bench":"ops", "op", "config", "fused_ms", "reference_ms", "speedup"}   forward + backward
//   {"bench":"train", "config", "ours_tokens_per_s", "peer_tokens_per_s", "ratio", ...}
//   {"bench":"family", "family", "params", "train_tokens_per_s", ...}
//   {"bench":"generate", "family", "context", "tokens_per_s", "state_bytes", "rss_growth_bytes"}
//   {"bench":"matmul", "n", "dtype", "tflops", ...}       --throughput on CUDA: the card's rate
//   {"bench":"throughput", "config", "tokens_per_s", "mfu", "peak_memory_used_bytes", ...}
// --throughput runs only the throughput lines (see RunThroughput); the other modes are CPU-only.
// Ours and the peer run one after the other per config, on the same random-token batches' shape,
// step count and thread count. Both also report tokens per second of process CPU time, steadier
// than wall time when other processes share the cores. Run it on an otherwise idle machine.

#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "model/causal_lm.h"
#include "model/device.h"
#include "model/foreach_adamw.h"
#include "model/ops.h"
#include "model/optimizer.h"
#include "model/registry.h"
#include "runspec/run_config.h"

ABSL_FLAG(int, threads, 2, "intra-op threads, for us and for the peer");
ABSL_FLAG(int, steps, 20, "timed training steps per config (after the warm-up)");
ABSL_FLAG(int, warmup, 3, "untimed training steps first");
ABSL_FLAG(std::string, configs, "c1,c2,c3", "training configs to run, of c1, c2, c3");
ABSL_FLAG(std::string, peer, "bench/peer_train.py", "the PyTorch peer script");
ABSL_FLAG(std::string, python, "python3", "interpreter that runs the peer (needs torch)");
ABSL_FLAG(std::string, peer_arch, "llama",
          "the peer's architecture: llama (issue 6's transformer) or gpt2 (the layout before)");
ABSL_FLAG(bool, ops, true, "time each fused op against its reference on the configs' shapes");
ABSL_FLAG(bool, train, true, "train each config, ours and the peer's");
ABSL_FLAG(bool, families, true, "train and generate with every family at about equal size");
ABSL_FLAG(std::string, contexts, "256,1024,4096", "generation contexts in tokens");
ABSL_FLAG(int, gen_tokens, 32, "tokens decoded one at a time after the prompt, per context");
ABSL_FLAG(bool, throughput, false,
          "only the throughput run: train each of --configs on --device in --precision and "
          "report tokens/s, MFU and memory (the GPU benchmark of bench/gpu/run.sh)");
ABSL_FLAG(std::string, device, "cpu", "--throughput: cpu or cuda");
ABSL_FLAG(std::string, precision, "fp32",
          "--throughput: fp32, or bf16 (CUDA autocast to bf16; parameters stay fp32)");
ABSL_FLAG(int, batch, 0,
          "--throughput: sequences per step; 0 = the config's, or on CUDA for a config without "
          "one (gpt124m), as many as --memory_fraction of the card holds, at most --max_batch");
ABSL_FLAG(int, max_batch, 64, "--throughput: largest batch the automatic choice takes");
ABSL_FLAG(double, memory_fraction, 0.8,
          "--throughput: share of the card's memory the automatic batch may plan to use");
ABSL_FLAG(double, time_budget_s, 0,
          "--throughput: stop the timed steps of a config once they took this long (0 = none); "
          "the line reports the steps done");
ABSL_FLAG(std::string, optimizer, "foreach",
          "--throughput: foreach (ForeachAdamW, multi-tensor ops) or torch "
          "(torch::optim::AdamW, ~8 ops per parameter); the same update");
ABSL_FLAG(double, matmul_tflops, 0,
          "--throughput: the card's bf16 matrix rate in TFLOP/s for MFU; 0 = measure it here "
          "(CUDA: 8192^3 bf16 products, mean of 10 after 3 warm-ups)");

namespace scalelab::model {
namespace {

constexpr int64_t kVocab = 256;

struct Config {
  std::string name;
  int64_t d_model, n_layers, n_heads, seq_len, batch;
  int64_t vocab = kVocab;
};

// c1..c3: the CPU comparison with the peer. gpt124m: GPT-2 small's shape (124M parameters with
// GPT-2's tied 50257-token vocabulary; 50304 = the next multiple of 128, for the tensor cores)
// in the Llama layout, --throughput only; batch 0 = chosen by memory. tiny: the same code path
// at a size a CPU runs in seconds.
const Config kConfigs[] = {
    {"c1", 64, 2, 2, 128, 16},      {"c2", 128, 4, 4, 256, 16},
    {"c3", 256, 6, 8, 256, 8},      {"gpt124m", 768, 12, 12, 1024, 0, 50304},
    {"tiny", 64, 2, 2, 64, 4, 512},
};

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
}

std::vector<std::string> SplitList(const std::string& text) {
  return absl::StrSplit(text, ',', absl::SkipEmpty());
}

// "null" for an absent figure, the number otherwise.
std::string Json(std::optional<double> value) {
  return value.has_value() ? absl::StrFormat("%.6g", *value) : "null";
}

std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += (c == '\n' || c == '\r') ? ' ' : c;
  }
  return out + "\"";
}

scalelab::v1::ModelSpec MakeSpec(const std::string& family, int64_t d_model, int64_t n_layers,
                                 int64_t n_heads, int64_t seq_len, int64_t vocab = kVocab) {
  scalelab::v1::RunConfig config;
  scalelab::v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family(family);
  spec.set_d_model(static_cast<int32_t>(d_model));
  spec.set_n_layers(static_cast<int32_t>(n_layers));
  spec.set_n_heads(static_cast<int32_t>(n_heads));
  spec.set_seq_len(static_cast<int32_t>(seq_len));
  spec.set_vocab_size(static_cast<int32_t>(vocab));
  runspec::ApplyRunDefaults(&config);
  return spec;
}

// "hybrid:parallel" -> family "hybrid" with hybrid.mode "parallel".
scalelab::v1::ModelSpec MakeFamilySpec(const std::string& name, int64_t d_model, int64_t n_layers,
                                       int64_t n_heads, int64_t seq_len) {
  const std::vector<std::string> parts = absl::StrSplit(name, ':');
  scalelab::v1::ModelSpec spec = MakeSpec(parts[0], d_model, n_layers, n_heads, seq_len);
  if (parts.size() > 1) spec.mutable_hybrid()->set_mode(parts[1]);
  return spec;
}

struct TrainResult {
  double tokens_per_s = 0;
  double tokens_per_cpu_s = 0;
  int64_t params = 0;
  double final_loss = 0;
};

// The peer's loop step for step: AdamW (lr 1e-3, betas 0.9/0.95, wd 0.1 on matrices), clip 1.0.
absl::StatusOr<TrainResult> Train(const scalelab::v1::ModelSpec& spec, int64_t batch, int steps,
                                  int warmup) {
  torch::manual_seed(1);
  absl::StatusOr<std::shared_ptr<CausalLM>> built = BuildModel(spec);
  if (!built.ok()) return built.status();
  CausalLM& model = **built;
  model.train();
  std::unique_ptr<torch::optim::AdamW> optimizer = MakeAdamW(model, 1e-3, 0.1);
  std::vector<torch::Tensor> batches;
  for (int i = 0; i < 4; ++i)
    batches.push_back(torch::randint(kVocab, {batch, spec.seq_len() + 1}));
  const int64_t seq_len = spec.seq_len();
  TrainResult result;
  result.params = model.NumParams();
  double start = 0;
  double start_cpu = 0;
  for (int step = 0; step < warmup + steps; ++step) {
    if (step == warmup) {
      start = WallSeconds();
      start_cpu = CpuSeconds();
    }
    const torch::Tensor& tokens = batches[static_cast<size_t>(step) % batches.size()];
    torch::Tensor inputs = tokens.narrow(1, 0, seq_len);
    torch::Tensor targets = tokens.narrow(1, 1, seq_len);
    torch::Tensor loss = model.Loss(inputs, targets);
    optimizer->zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model.parameters(), 1.0);
    optimizer->step();
    result.final_loss = loss.item<double>();
  }
  const double tokens = static_cast<double>(steps * batch * seq_len);
  result.tokens_per_s = tokens / (WallSeconds() - start);
  result.tokens_per_cpu_s = tokens / (CpuSeconds() - start_cpu);
  return result;
}

// Value of "key": <number> in one flat JSON line.
std::optional<double> JsonNumber(const std::string& line, const std::string& key) {
  const std::string pattern = absl::StrCat("\"", key, "\": ");
  const size_t at = line.find(pattern);
  if (at == std::string::npos) return std::nullopt;
  const size_t begin = at + pattern.size();
  const size_t end = line.find_first_of(",}", begin);
  double value = 0;
  if (!absl::SimpleAtod(line.substr(begin, end - begin), &value)) return std::nullopt;
  return value;
}

struct PeerResult {
  std::optional<double> tokens_per_s, tokens_per_cpu_s, params, final_loss;
  std::string error;  // Why there is no figure, when there is none.
};

// Runs the peer as a child process and reads its one JSON line.
PeerResult RunPeer(const Config& config, int threads, int steps, int warmup) {
  PeerResult result;
  const std::string python = absl::GetFlag(FLAGS_python);
  const std::string script = absl::GetFlag(FLAGS_peer);
  if (!std::ifstream(script).good()) {
    result.error = absl::StrCat("--peer: no peer script at ", script);
    return result;
  }
  const std::string log = absl::StrCat("/tmp/scalelab-peer-", getpid(), ".log");
  const std::string command = absl::StrCat(
      python, " ", script, " --arch=", absl::GetFlag(FLAGS_peer_arch),
      " --d_model=", config.d_model, " --n_layers=", config.n_layers, " --n_heads=", config.n_heads,
      " --seq_len=", config.seq_len, " --batch=", config.batch, " --vocab=", kVocab,
      " --steps=", steps, " --warmup=", warmup, " --threads=", threads, " 2>", log);
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    result.error = absl::StrCat("could not start ", python);
    return result;
  }
  std::string output;
  char buffer[4096];
  while (fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  const int wait_status = pclose(pipe);
  const int status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : wait_status;
  result.tokens_per_s = JsonNumber(output, "tokens_per_s");
  result.tokens_per_cpu_s = JsonNumber(output, "tokens_per_cpu_s");
  result.params = JsonNumber(output, "params");
  result.final_loss = JsonNumber(output, "final_loss");
  if (status != 0 || !result.tokens_per_s.has_value()) {
    // The last line of the child's stderr says why, e.g. "No module named 'torch'".
    std::ifstream errors(log);
    std::string line;
    std::string last;
    while (std::getline(errors, line)) {
      if (!line.empty()) last = line;
    }
    result.error = absl::StrCat(python, " ", script, " failed (exit ", status, "): ", last);
    result.tokens_per_s.reset();
  }
  std::remove(log.c_str());
  return result;
}

// ---- Ops: fused against reference ------------------------------------------------------------

struct OpTime {
  double wall_ms;
  double cpu_ms;
};

// Median wall and process-CPU milliseconds of forward + backward of `op` over `reps` runs after
// two warm-ups.
OpTime TimeOp(const std::function<torch::Tensor()>& op, int reps) {
  std::vector<double> wall;
  std::vector<double> cpu;
  for (int rep = 0; rep < reps + 2; ++rep) {
    const double start = WallSeconds();
    const double start_cpu = CpuSeconds();
    torch::Tensor out = op();
    out.backward(torch::ones_like(out));
    if (rep >= 2) {
      wall.push_back((WallSeconds() - start) * 1e3);
      cpu.push_back((CpuSeconds() - start_cpu) * 1e3);
    }
  }
  auto median = [](std::vector<double>& values) {
    std::nth_element(values.begin(), values.begin() + static_cast<int64_t>(values.size() / 2),
                     values.end());
    return values[values.size() / 2];
  };
  return {median(wall), median(cpu)};
}

void BenchOps(const Config& config) {
  const int64_t b = config.batch;
  const int64_t t = config.seq_len;
  const int64_t d = config.d_model;
  const int64_t h = config.n_heads;
  const int64_t hd = d / h;
  const int64_t d_ff = ((8 * d + 2) / 3 + 7) / 8 * 8;
  auto leaf = [](std::vector<int64_t> sizes) { return torch::randn(sizes).requires_grad_(true); };
  torch::Tensor x = leaf({b, t, d});
  torch::Tensor weight = leaf({d});
  torch::Tensor q = leaf({b, h, t, hd});
  torch::Tensor k = leaf({b, h, t, hd});
  torch::Tensor v = leaf({b, h, t, hd});
  torch::Tensor gate = leaf({b, t, d_ff});
  torch::Tensor up = leaf({b, t, d_ff});
  torch::Tensor logits = leaf({b * t, kVocab});
  torch::Tensor targets = torch::randint(kVocab, {b * t});
  torch::Tensor cos;
  torch::Tensor sin;
  ops::RotaryTables(0, t, hd, 10000.0, torch::kCPU, &cos, &sin);
  struct Row {
    std::string name;
    std::function<torch::Tensor()> op;
  };
  const std::vector<Row> rows = {
      {"rms_norm", [&] { return ops::RmsNorm(x, weight, 1e-5); }},
      {"rotary", [&] { return ops::ApplyRotary(q, cos, sin); }},
      {"attention", [&] { return ops::CausalAttention(q, k, v, 0); }},
      {"swiglu", [&] { return ops::SwiGlu(gate, up); }},
      {"cross_entropy", [&] { return ops::CrossEntropy(logits, targets); }},
  };
  for (const Row& row : rows) {
    ops::SetImpl(ops::Impl::kFast);
    const OpTime fused = TimeOp(row.op, 10);
    ops::SetImpl(ops::Impl::kReference);
    const OpTime reference = TimeOp(row.op, 10);
    ops::SetImpl(ops::Impl::kFast);
    absl::PrintF(
        "{\"bench\":\"ops\",\"op\":\"%s\",\"config\":\"%s\",\"fused_ms\":%.4g,"
        "\"reference_ms\":%.4g,\"speedup\":%.3g,\"fused_cpu_ms\":%.4g,"
        "\"reference_cpu_ms\":%.4g,\"speedup_cpu\":%.3g}\n",
        row.name, config.name, fused.wall_ms, reference.wall_ms, reference.wall_ms / fused.wall_ms,
        fused.cpu_ms, reference.cpu_ms, reference.cpu_ms / fused.cpu_ms);
    std::fflush(stdout);
  }
}

// ---- Families: training and generation -------------------------------------------------------

int64_t ProcStatusKb(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      int64_t kb = 0;
      std::string digits = line.substr(field.size() + 1);
      digits.erase(
          std::remove_if(digits.begin(), digits.end(), [](char c) { return c < '0' || c > '9'; }),
          digits.end());
      if (absl::SimpleAtoi(digits, &kb)) return kb;
    }
  }
  return 0;
}

int64_t StateBytes(const InferenceState& state) {
  int64_t bytes = 0;
  for (const LayerCache& layer : state.layers) {
    for (const torch::Tensor* tensor :
         {&layer.keys, &layer.values, &layer.conv_state, &layer.ssm_state}) {
      if (tensor->defined()) bytes += tensor->numel() * tensor->element_size();
    }
  }
  return bytes;
}

// Greedy decoding, batch 1: a prompt of context - gen_tokens tokens in one ForwardStep, then
// gen_tokens single-token steps, timed.
void BenchGeneration(const std::string& family, const scalelab::v1::ModelSpec& spec) {
  torch::manual_seed(2);
  absl::StatusOr<std::shared_ptr<CausalLM>> built = BuildModel(spec);
  if (!built.ok()) {
    absl::PrintF("{\"bench\":\"generate\",\"family\":\"%s\",\"error\":%s}\n", family,
                 Quote(std::string(built.status().message())));
    return;
  }
  CausalLM& model = **built;
  model.eval();
  const int64_t gen_tokens = absl::GetFlag(FLAGS_gen_tokens);
  for (const std::string& context_text : SplitList(absl::GetFlag(FLAGS_contexts))) {
    int64_t context = 0;
    if (!absl::SimpleAtoi(context_text, &context) || context <= gen_tokens ||
        context > spec.seq_len()) {
      continue;
    }
    // Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS.
    std::ofstream("/proc/self/clear_refs") << "5";
    const int64_t rss_before_kb = ProcStatusKb("VmRSS");
    InferenceState state = model.NewInferenceState(1);
    torch::Tensor prompt = torch::randint(kVocab, {1, context - gen_tokens});
    absl::StatusOr<torch::Tensor> logits = model.ForwardStep(prompt, state);
    const double start = WallSeconds();
    for (int64_t i = 0; logits.ok() && i < gen_tokens; ++i) {
      torch::Tensor next = logits->select(1, logits->size(1) - 1).argmax(-1).view({1, 1});
      logits = model.ForwardStep(next, state);
    }
    const double seconds = WallSeconds() - start;
    if (!logits.ok()) {
      absl::PrintF("{\"bench\":\"generate\",\"family\":\"%s\",\"context\":%d,\"error\":%s}\n",
                   family, context, Quote(std::string(logits.status().message())));
      continue;
    }
    absl::PrintF(
        "{\"bench\":\"generate\",\"family\":\"%s\",\"context\":%d,\"tokens_per_s\":%.4g,"
        "\"state_bytes\":%d,\"rss_growth_bytes\":%d}\n",
        family, context, static_cast<double>(gen_tokens) / seconds, StateBytes(state),
        (ProcStatusKb("VmHWM") - rss_before_kb) * 1024);
    std::fflush(stdout);
  }
}

// Every family at about the parameter count of the transformer of c2 (d_model 128): the depth of
// the others is chosen to match, from their per-layer parameter count.
void BenchFamilies(int steps, int warmup) {
  const std::vector<std::string> registered = RegisteredFamilies();
  const Config& base = kConfigs[1];
  int64_t max_context = 0;
  for (const std::string& text : SplitList(absl::GetFlag(FLAGS_contexts))) {
    int64_t context = 0;
    if (absl::SimpleAtoi(text, &context)) max_context = std::max(max_context, context);
  }
  int64_t target_params = 0;
  for (const std::string name : {"transformer", "mamba2", "hybrid:sequential", "hybrid:parallel"}) {
    const std::string family = name.substr(0, name.find(':'));
    if (std::find(registered.begin(), registered.end(), family) == registered.end()) {
      absl::PrintF("{\"bench\":\"family\",\"family\":\"%s\",\"skipped\":\"%s not registered\"}\n",
                   name, family);
      continue;
    }
    int64_t n_layers = base.n_layers;
    if (target_params > 0) {
      torch::manual_seed(1);
      auto one = BuildModel(MakeFamilySpec(name, base.d_model, 1, base.n_heads, base.seq_len));
      auto two = BuildModel(MakeFamilySpec(name, base.d_model, 2, base.n_heads, base.seq_len));
      if (one.ok() && two.ok()) {
        const int64_t per_layer = (*two)->NumParams() - (*one)->NumParams();
        const int64_t fixed = (*one)->NumParams() - per_layer;
        n_layers = std::max<int64_t>(
            1, (target_params - fixed + per_layer / 2) / std::max<int64_t>(per_layer, 1));
      }
    }
    scalelab::v1::ModelSpec spec =
        MakeFamilySpec(name, base.d_model, n_layers, base.n_heads, base.seq_len);
    absl::StatusOr<TrainResult> trained = Train(spec, base.batch, steps, warmup);
    if (!trained.ok()) {
      absl::PrintF("{\"bench\":\"family\",\"family\":\"%s\",\"error\":%s}\n", name,
                   Quote(std::string(trained.status().message())));
      continue;
    }
    if (target_params == 0) target_params = trained->params;
    absl::PrintF(
        "{\"bench\":\"family\",\"family\":\"%s\",\"n_layers\":%d,\"params\":%d,"
        "\"train_tokens_per_s\":%.4g,\"train_tokens_per_cpu_s\":%.4g}\n",
        name, n_layers, trained->params, trained->tokens_per_s, trained->tokens_per_cpu_s);
    std::fflush(stdout);
    BenchGeneration(name, MakeFamilySpec(name, base.d_model, n_layers, base.n_heads, max_context));
  }
}

// ---- Throughput: tokens/s, MFU and memory on one device ----------------------------------------

struct ThroughputOptions {
  torch::Device device = torch::kCPU;
  bool bf16 = false;    // CUDA autocast to bf16 around each forward pass.
  int warmup = 5;       // Untimed steps first (cuBLAS heuristics, allocator growth).
  int steps = 30;       // Timed steps, unless the budget ends them first.
  double budget_s = 0;  // Wall seconds of timed steps after which no new step starts; 0 = none.
  bool foreach_adamw = true;  // ForeachAdamW rather than torch::optim::AdamW.
};

// One of the two AdamWs of the same update (model/foreach_adamw.h), lr 1e-3 and weight decay
// 0.1 as Train() uses.
class BenchOptimizer {
 public:
  BenchOptimizer(const CausalLM& model, bool foreach_adamw) {
    if (foreach_adamw) {
      foreach_ = std::make_unique<ForeachAdamW>(model, 1e-3, 0.1);
    } else {
      torch_ = MakeAdamW(model, 1e-3, 0.1);
    }
  }
  void zero_grad() { foreach_ ? foreach_->zero_grad() : torch_->zero_grad(); }
  void step() { foreach_ ? foreach_->step() : static_cast<void>(torch_->step()); }

 private:
  std::unique_ptr<ForeachAdamW> foreach_;
  std::unique_ptr<torch::optim::AdamW> torch_;
};

struct ThroughputResult {
  int64_t params = 0;
  double flops_per_token = 0;
  int steps_done = 0;
  double seconds = 0;  // Wall time of the timed steps, the device synchronized at both ends.
  double tokens_per_s = 0;
  double first_loss = 0;
  double final_loss = 0;
  std::optional<int64_t> peak_used_bytes;  // Largest cudaMemGetInfo use seen after a step.
  // Medians over a few more steps, each phase between two device synchronizations: where the
  // time of a step goes (the synchronizations themselves cost a little of it).
  double forward_ms = 0, backward_ms = 0, optimizer_ms = 0;
};

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::nth_element(values.begin(), values.begin() + static_cast<int64_t>(values.size() / 2),
                   values.end());
  return values[values.size() / 2];
}

std::optional<int64_t> CudaUsedBytes(const torch::Device& device) {
  if (!device.is_cuda()) return std::nullopt;
  absl::StatusOr<CudaMemoryInfo> info = QueryCudaMemory();
  if (!info.ok()) return std::nullopt;
  return info->used_bytes;
}

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// clip_grad_norm_ to 1.0 as the peer does, without its host read of the norm: LibTorch's returns
// the norm as a double, which waits for the GPU every step.
void ClipGradNorm(const std::vector<torch::Tensor>& parameters, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const torch::Tensor& parameter : parameters) {
    if (parameter.grad().defined()) norms.push_back(parameter.grad().norm());
  }
  if (norms.empty()) return;
  const torch::Tensor total = torch::stack(norms).norm();
  const torch::Tensor scale = torch::clamp_max((total + 1e-6).reciprocal() * max_norm, 1.0);
  for (const torch::Tensor& parameter : parameters) {
    if (parameter.grad().defined()) parameter.grad().mul_(scale);
  }
}

// Trains `spec` with `batch` sequences per step as Train() does (AdamW, clipping), on
// options.device. An out-of-memory error comes back as kResourceExhausted, anything else LibTorch
// throws as kInternal; the model and its memory are released either way.
absl::StatusOr<ThroughputResult> TrainThroughput(const scalelab::v1::ModelSpec& spec, int64_t batch,
                                                 const ThroughputOptions& options) {
  try {
    torch::manual_seed(1);
    absl::StatusOr<std::shared_ptr<CausalLM>> built = BuildModel(spec);
    if (!built.ok()) return built.status();
    CausalLM& model = **built;
    model.to(options.device);
    model.train();
    auto optimizer = std::make_unique<BenchOptimizer>(model, options.foreach_adamw);
    const std::vector<torch::Tensor> parameters = model.parameters();
    const int64_t seq_len = spec.seq_len();
    std::vector<torch::Tensor> batches;
    for (int i = 0; i < 4; ++i) {
      batches.push_back(
          torch::randint(spec.vocab_size(), {batch, seq_len + 1},
                         torch::TensorOptions().dtype(torch::kLong).device(options.device)));
    }
    ThroughputResult result;
    result.params = model.NumParams();
    result.flops_per_token = model.FlopsPerToken();
    torch::Tensor first_loss;
    torch::Tensor last_loss;
    double start = 0;
    for (int step = 0; step < options.warmup + options.steps; ++step) {
      if (step == options.warmup) {
        Synchronize(options.device);
        start = WallSeconds();
      }
      if (step > options.warmup && options.budget_s > 0 &&
          WallSeconds() - start > options.budget_s) {
        break;
      }
      const torch::Tensor& tokens = batches[static_cast<size_t>(step) % batches.size()];
      torch::Tensor loss;
      {
        std::optional<CudaAutocast> autocast;
        if (options.bf16) autocast.emplace(torch::kBFloat16);
        loss = model.Loss(tokens.narrow(1, 0, seq_len), tokens.narrow(1, 1, seq_len));
      }
      optimizer->zero_grad();
      loss.backward();
      ClipGradNorm(parameters, 1.0);
      optimizer->step();
      if (step == 0) first_loss = loss.detach();
      last_loss = loss.detach();
      if (step >= options.warmup) ++result.steps_done;
      const std::optional<int64_t> used = CudaUsedBytes(options.device);
      if (used.has_value()) {
        result.peak_used_bytes = std::max(result.peak_used_bytes.value_or(0), *used);
      }
    }
    Synchronize(options.device);
    result.seconds = WallSeconds() - start;
    result.tokens_per_s =
        static_cast<double>(result.steps_done * batch * seq_len) / std::max(result.seconds, 1e-9);
    // The phases of 3 more steps, untimed above.
    std::vector<double> forward_ms, backward_ms, optimizer_ms;
    for (int step = 0; step < 3 && options.steps > 1; ++step) {
      const torch::Tensor& tokens = batches[static_cast<size_t>(step) % batches.size()];
      const double t0 = WallSeconds();
      torch::Tensor loss;
      {
        std::optional<CudaAutocast> autocast;
        if (options.bf16) autocast.emplace(torch::kBFloat16);
        loss = model.Loss(tokens.narrow(1, 0, seq_len), tokens.narrow(1, 1, seq_len));
      }
      Synchronize(options.device);
      const double t1 = WallSeconds();
      optimizer->zero_grad();
      loss.backward();
      Synchronize(options.device);
      const double t2 = WallSeconds();
      ClipGradNorm(parameters, 1.0);
      optimizer->step();
      Synchronize(options.device);
      const double t3 = WallSeconds();
      forward_ms.push_back((t1 - t0) * 1e3);
      backward_ms.push_back((t2 - t1) * 1e3);
      optimizer_ms.push_back((t3 - t2) * 1e3);
    }
    result.forward_ms = Median(forward_ms);
    result.backward_ms = Median(backward_ms);
    result.optimizer_ms = Median(optimizer_ms);
    result.first_loss = first_loss.item<double>();
    result.final_loss = last_loss.item<double>();
    return result;
  } catch (const c10::Error& error) {
    const std::string message = error.what_without_backtrace();
    if (message.find("out of memory") != std::string::npos) {
      return absl::ResourceExhaustedError(absl::StrCat("batch ", batch, ": ", message));
    }
    return absl::InternalError(message);
  } catch (const std::exception& error) {
    return absl::InternalError(error.what());
  }
}

// The card's dense matrix rate in TFLOP/s: n x n x n products of random values in `dtype`, the
// mean over 10 after 3 warm-ups (random data: zeros run faster on some GPUs).
double MeasureMatmulTflops(const torch::Device& device, torch::ScalarType dtype, int64_t n) {
  torch::NoGradGuard no_grad;
  const torch::TensorOptions options = torch::TensorOptions().device(device).dtype(dtype);
  const torch::Tensor a = torch::randn({n, n}, options);
  const torch::Tensor b = torch::randn({n, n}, options);
  torch::Tensor c;
  for (int i = 0; i < 3; ++i) c = torch::matmul(a, b);
  Synchronize(device);
  constexpr int kReps = 10;
  const double start = WallSeconds();
  for (int i = 0; i < kReps; ++i) c = torch::matmul(a, b);
  Synchronize(device);
  const double seconds = (WallSeconds() - start) / kReps;
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / seconds /
         1e12;
}

// The batch that fills options.memory_fraction of the card: two probes (2 and 4 sequences, two
// steps each) give the memory per sequence, the larger probe's use the base. A caching allocator
// keeps what it reserved, so the readings are of reserved memory, an over-estimate of the need.
struct BatchChoice {
  int64_t batch = 0;
  int64_t used_at_2 = 0, used_at_4 = 0, total = 0;
  double bytes_per_sequence = 0;
};

absl::StatusOr<BatchChoice> ChooseBatch(const scalelab::v1::ModelSpec& spec,
                                        const ThroughputOptions& options, int64_t max_batch,
                                        double fraction) {
  ThroughputOptions probe = options;
  probe.warmup = 1;
  probe.steps = 1;
  probe.budget_s = 0;
  BatchChoice choice;
  for (int64_t batch : {2, 4}) {
    absl::StatusOr<ThroughputResult> run = TrainThroughput(spec, batch, probe);
    if (!run.ok()) return run.status();
    (batch == 2 ? choice.used_at_2 : choice.used_at_4) = run->peak_used_bytes.value_or(0);
  }
  absl::StatusOr<CudaMemoryInfo> info = QueryCudaMemory();
  if (!info.ok()) return info.status();
  choice.total = info->total_bytes;
  choice.bytes_per_sequence = static_cast<double>(choice.used_at_4 - choice.used_at_2) / 2.0;
  const double room =
      fraction * static_cast<double>(choice.total) - static_cast<double>(choice.used_at_4);
  choice.batch = choice.bytes_per_sequence <= 0
                     ? max_batch
                     : 4 + static_cast<int64_t>(room / choice.bytes_per_sequence);
  choice.batch = std::clamp<int64_t>(choice.batch, 1, max_batch);
  return choice;
}

absl::Status CheckThroughputFlags(ThroughputOptions* options) {
  const std::string device = absl::GetFlag(FLAGS_device);
  const std::string precision = absl::GetFlag(FLAGS_precision);
  if (device != "cpu" && device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device: expected cpu or cuda, got \"", device, "\""));
  }
  if (precision != "fp32" && precision != "bf16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--precision: expected fp32 or bf16, got \"", precision, "\""));
  }
  if (device == "cuda" && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError(
        "--device=cuda: this LibTorch sees no CUDA device (torch::cuda::is_available() is "
        "false: a CPU-only LibTorch, or no GPU)");
  }
  if (precision == "bf16" && device != "cuda") {
    return absl::InvalidArgumentError(
        "--precision=bf16 needs --device=cuda (it is CUDA autocast; the CPU runs fp32)");
  }
  if (absl::GetFlag(FLAGS_batch) < 0 || absl::GetFlag(FLAGS_max_batch) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch must be >= 0 and --max_batch >= 1, got ", absl::GetFlag(FLAGS_batch),
                     " and ", absl::GetFlag(FLAGS_max_batch)));
  }
  const double fraction = absl::GetFlag(FLAGS_memory_fraction);
  if (!(fraction > 0 && fraction <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--memory_fraction: expected a value in (0, 1], got ", fraction));
  }
  options->device = device == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  options->bf16 = precision == "bf16";
  options->warmup = absl::GetFlag(FLAGS_warmup);
  options->steps = absl::GetFlag(FLAGS_steps);
  options->budget_s = absl::GetFlag(FLAGS_time_budget_s);
  const std::string optimizer = absl::GetFlag(FLAGS_optimizer);
  if (optimizer != "foreach" && optimizer != "torch") {
    return absl::InvalidArgumentError(
        absl::StrCat("--optimizer: expected foreach or torch, got \"", optimizer, "\""));
  }
  options->foreach_adamw = optimizer == "foreach";
  if (options->warmup < 0 || options->steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--warmup must be >= 0 and --steps >= 1, got ",
                                                   options->warmup, " and ", options->steps));
  }
  return absl::OkStatus();
}

// The throughput lines for every config of --configs. MFU = flops_per_token * tokens_per_s /
// the matrix rate (bf16 on CUDA: the rate the model's products run at; fp32 on the CPU).
// flops_per_token is CausalLM::FlopsPerToken (dense attention); mfu_causal counts the attention
// products halved, as a causal kernel computes them.
int RunThroughput(const std::vector<Config>& configs) {
  ThroughputOptions options;
  if (absl::Status status = CheckThroughputFlags(&options); !status.ok()) {
    absl::FPrintF(stderr, "scalelab-train-bench: %s\n", status.message());
    return 2;
  }
  const bool cuda = options.device.is_cuda();
  double matmul_tflops = absl::GetFlag(FLAGS_matmul_tflops);
  std::string matmul_source = "flag";
  if (matmul_tflops <= 0) {
    const int64_t n = cuda ? 8192 : 1024;
    const torch::ScalarType dtype = options.bf16 ? torch::kBFloat16 : torch::kFloat;
    matmul_tflops = MeasureMatmulTflops(options.device, dtype, n);
    matmul_source = "measured";
    absl::PrintF(
        "{\"bench\":\"matmul\",\"device\":\"%s\",\"dtype\":\"%s\",\"n\":%d,\"reps\":10,"
        "\"tflops\":%.4g}\n",
        cuda ? "cuda" : "cpu", options.bf16 ? "bf16" : "fp32", n, matmul_tflops);
    std::fflush(stdout);
  }
  int failures = 0;
  for (const Config& config : configs) {
    const scalelab::v1::ModelSpec spec = MakeSpec("transformer", config.d_model, config.n_layers,
                                                  config.n_heads, config.seq_len, config.vocab);
    int64_t batch = absl::GetFlag(FLAGS_batch) > 0 ? absl::GetFlag(FLAGS_batch) : config.batch;
    std::string batch_note = absl::GetFlag(FLAGS_batch) > 0 ? "flag" : "config";
    if (batch == 0 && !cuda) {
      batch = 4;
      batch_note = "cpu default";
    } else if (batch == 0) {
      absl::StatusOr<BatchChoice> choice = ChooseBatch(
          spec, options, absl::GetFlag(FLAGS_max_batch), absl::GetFlag(FLAGS_memory_fraction));
      if (!choice.ok()) {
        absl::PrintF("{\"bench\":\"throughput\",\"config\":\"%s\",\"error\":%s}\n", config.name,
                     Quote(absl::StrCat("choosing the batch: ", choice.status().message())));
        ++failures;
        continue;
      }
      batch = choice->batch;
      batch_note = "memory";
      absl::PrintF(
          "{\"bench\":\"batch_choice\",\"config\":\"%s\",\"used_bytes_at_2\":%d,"
          "\"used_bytes_at_4\":%d,\"bytes_per_sequence\":%.6g,\"total_bytes\":%d,"
          "\"batch\":%d}\n",
          config.name, choice->used_at_2, choice->used_at_4, choice->bytes_per_sequence,
          choice->total, choice->batch);
      std::fflush(stdout);
    }
    absl::StatusOr<ThroughputResult> run = TrainThroughput(spec, batch, options);
    // Out of memory: half the batch, up to three times.
    for (int retry = 0;
         retry < 3 && !run.ok() && absl::IsResourceExhausted(run.status()) && batch > 1; ++retry) {
      absl::PrintF("{\"bench\":\"throughput\",\"config\":\"%s\",\"batch\":%d,\"retry\":%s}\n",
                   config.name, batch, Quote(std::string(run.status().message()).substr(0, 300)));
      batch /= 2;
      batch_note = "halved after out of memory";
      run = TrainThroughput(spec, batch, options);
    }
    if (!run.ok()) {
      absl::PrintF("{\"bench\":\"throughput\",\"config\":\"%s\",\"batch\":%d,\"error\":%s}\n",
                   config.name, batch, Quote(std::string(run.status().message()).substr(0, 2000)));
      ++failures;
      continue;
    }
    const double head_dim = static_cast<double>(config.d_model / config.n_heads);
    const double causal_saving = 6.0 * static_cast<double>(config.n_layers * config.seq_len) *
                                 static_cast<double>(config.n_heads) * head_dim;
    const double flops_causal = run->flops_per_token - causal_saving;
    const double model_tflops = run->flops_per_token * run->tokens_per_s / 1e12;
    std::optional<double> memory_total;
    if (cuda) {
      absl::StatusOr<CudaMemoryInfo> info = QueryCudaMemory();
      if (info.ok()) memory_total = static_cast<double>(info->total_bytes);
    }
    absl::PrintF(
        "{\"bench\":\"throughput\",\"config\":\"%s\",\"device\":\"%s\",\"precision\":\"%s\","
        "\"torch\":\"%d.%d.%d\",\"kernels_built\":%s,\"params\":%d,\"d_model\":%d,"
        "\"n_layers\":%d,\"n_heads\":%d,\"seq_len\":%d,\"vocab\":%d,\"batch\":%d,"
        "\"batch_from\":\"%s\",\"tokens_per_step\":%d,\"warmup\":%d,\"steps\":%d,"
        "\"seconds\":%.4g,\"step_ms\":%.4g,\"tokens_per_s\":%.6g,\"flops_per_token\":%.6g,"
        "\"flops_per_token_causal\":%.6g,\"model_tflops\":%.4g,\"matmul_tflops\":%.4g,"
        "\"matmul_tflops_from\":\"%s\",\"mfu\":%.4f,\"mfu_causal\":%.4f,"
        "\"peak_memory_used_bytes\":%s,\"memory_total_bytes\":%s,\"first_loss\":%.4f,"
        "\"final_loss\":%.4f,\"forward_ms\":%.4g,\"backward_ms\":%.4g,"
        "\"clip_and_optimizer_ms\":%.4g,\"optimizer\":\"%s\"}\n",
        config.name, cuda ? "cuda" : "cpu", options.bf16 ? "bf16" : "fp32", TORCH_VERSION_MAJOR,
        TORCH_VERSION_MINOR, TORCH_VERSION_PATCH, KernelsBuilt() ? "true" : "false", run->params,
        config.d_model, config.n_layers, config.n_heads, config.seq_len, config.vocab, batch,
        batch_note, batch * config.seq_len, options.warmup, run->steps_done, run->seconds,
        run->seconds / std::max(run->steps_done, 1) * 1e3, run->tokens_per_s, run->flops_per_token,
        flops_causal, model_tflops, matmul_tflops, matmul_source, model_tflops / matmul_tflops,
        flops_causal * run->tokens_per_s / 1e12 / matmul_tflops,
        run->peak_used_bytes.has_value() ? absl::StrCat(*run->peak_used_bytes) : "null",
        Json(memory_total), run->first_loss, run->final_loss, run->forward_ms, run->backward_ms,
        run->optimizer_ms, options.foreach_adamw ? "foreach" : "torch");
    std::fflush(stdout);
  }
  return failures == 0 ? 0 : 1;
}

int Main() {
  const int threads = absl::GetFlag(FLAGS_threads);
  const int steps = absl::GetFlag(FLAGS_steps);
  const int warmup = absl::GetFlag(FLAGS_warmup);
  ops::ConfigureCpuThreads(threads);
  std::vector<Config> configs;
  for (const std::string& name : SplitList(absl::GetFlag(FLAGS_configs))) {
    bool known = false;
    for (const Config& config : kConfigs) {
      if (config.name == name) {
        configs.push_back(config);
        known = true;
      }
    }
    if (!known) {
      absl::FPrintF(stderr,
                    "scalelab-train-bench: --configs: unknown config \"%s\" (expected c1, c2, c3, "
                    "gpt124m or tiny)\n",
                    name);
      return 2;
    }
  }
  if (absl::GetFlag(FLAGS_throughput)) return RunThroughput(configs);
  if (absl::GetFlag(FLAGS_ops)) {
    for (const Config& config : configs) BenchOps(config);
  }
  for (const Config& config : absl::GetFlag(FLAGS_train) ? configs : std::vector<Config>()) {
    scalelab::v1::ModelSpec spec =
        MakeSpec("transformer", config.d_model, config.n_layers, config.n_heads, config.seq_len);
    absl::StatusOr<TrainResult> ours = Train(spec, config.batch, steps, warmup);
    if (!ours.ok()) {
      absl::PrintF("{\"bench\":\"train\",\"config\":\"%s\",\"error\":%s}\n", config.name,
                   Quote(std::string(ours.status().message())));
      continue;
    }
    const PeerResult peer = RunPeer(config, threads, steps, warmup);
    std::optional<double> ratio;
    std::optional<double> ratio_cpu;
    if (peer.tokens_per_s.has_value()) ratio = ours->tokens_per_s / *peer.tokens_per_s;
    if (peer.tokens_per_cpu_s.has_value()) {
      ratio_cpu = ours->tokens_per_cpu_s / *peer.tokens_per_cpu_s;
    }
    absl::PrintF(
        "{\"bench\":\"train\",\"config\":\"%s\",\"ours_tokens_per_s\":%.4g,"
        "\"peer_tokens_per_s\":%s,\"ratio\":%s,\"ours_tokens_per_cpu_s\":%.4g,"
        "\"peer_tokens_per_cpu_s\":%s,\"ratio_cpu\":%s,\"ours_params\":%d,\"peer_params\":%s,"
        "\"ours_final_loss\":%.4f,\"peer_final_loss\":%s,\"steps\":%d,\"threads\":%d,"
        "\"peer_arch\":\"%s\"%s}\n",
        config.name, ours->tokens_per_s, Json(peer.tokens_per_s), Json(ratio),
        ours->tokens_per_cpu_s, Json(peer.tokens_per_cpu_s), Json(ratio_cpu), ours->params,
        peer.params.has_value() ? absl::StrCat(static_cast<int64_t>(*peer.params)) : "null",
        ours->final_loss, Json(peer.final_loss), steps, threads, absl::GetFlag(FLAGS_peer_arch),
        peer.error.empty() ? "" : absl::StrCat(",\"reason\":", Quote(peer.error)));
    std::fflush(stdout);
  }
  if (absl::GetFlag(FLAGS_families)) BenchFamilies(std::max(1, steps / 2), warmup);
  return 0;
}

}  // namespace
}  // namespace scalelab::model

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return scalelab::model::Main();
}
