// Training throughput of scalelab's model runtime against a PyTorch peer, the fused CPU ops
// against their reference compositions, and the model families' training and generation speed.
//
//   build/bin/scalelab-train-bench --peer=bench/peer_train.py [--python=python3] [--threads=2]
//       [--steps=20] [--warmup=3] [--configs=c1,c2,c3] [--ops] [--families]
//
// Prints one JSON line per measurement:
//   {"bench":"ops", "op", "config", "fused_ms", "reference_ms", "speedup"}   forward + backward
//   {"bench":"train", "config", "ours_tokens_per_s", "peer_tokens_per_s", "ratio", ...}
//   {"bench":"family", "family", "params", "train_tokens_per_s", ...}
//   {"bench":"generate", "family", "context", "tokens_per_s", "state_bytes", "rss_growth_bytes"}
// Ours and the peer run one after the other per config, on the same random-token batches' shape,
// step count and thread count. Both also report tokens per second of process CPU time, steadier
// than wall time when other processes share the cores. Run it on an otherwise idle machine.

#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/torch.h>
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
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "model/causal_lm.h"
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

namespace scalelab::model {
namespace {

constexpr int64_t kVocab = 256;

struct Config {
  std::string name;
  int64_t d_model, n_layers, n_heads, seq_len, batch;
};

const Config kConfigs[] = {
    {"c1", 64, 2, 2, 128, 16},
    {"c2", 128, 4, 4, 256, 16},
    {"c3", 256, 6, 8, 256, 8},
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
                                 int64_t n_heads, int64_t seq_len) {
  scalelab::v1::RunConfig config;
  scalelab::v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family(family);
  spec.set_d_model(static_cast<int32_t>(d_model));
  spec.set_n_layers(static_cast<int32_t>(n_layers));
  spec.set_n_heads(static_cast<int32_t>(n_heads));
  spec.set_seq_len(static_cast<int32_t>(seq_len));
  spec.set_vocab_size(kVocab);
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

int Main() {
  const int threads = absl::GetFlag(FLAGS_threads);
  const int steps = absl::GetFlag(FLAGS_steps);
  const int warmup = absl::GetFlag(FLAGS_warmup);
  ops::ConfigureCpuThreads(threads);
  std::vector<Config> configs;
  for (const std::string& name : SplitList(absl::GetFlag(FLAGS_configs))) {
    for (const Config& config : kConfigs) {
      if (config.name == name) configs.push_back(config);
    }
  }
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
