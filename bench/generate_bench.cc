// scalelab-generate-bench: generation speed of the transformer family.
//   1. Trains a small transformer with LayerSkip (layer dropout + early-exit loss, model/
//      layerskip.h) for --train_steps steps on task text (a TaskSet's train problems, each
//      "prompt response\n", concatenated), and prints each layer's exit loss on held-out text.
//   2. Greedy decoding tokens/s with the KV cache (ForwardStep) and without it (forward() over
//      the whole sequence at each step), on the same prompts, and their ratio.
//   3. Self-speculative decoding (GenerateSelfSpeculative) against plain greedy Generate with the
//      cache, for each exit layer in --exit_layers and draft length in --draft_tokens: tokens/s
//      of both, their ratio (the speed-up), the draft acceptance rate, tokens per verification
//      pass, and whether the outputs were identical.
// Every ratio compares runs made in the same process, back to back, on the same prompts; each
// timing is the median of --repeats runs. Output: one JSON object per line.

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "model/causal_lm.h"
#include "model/generation.h"
#include "model/ops.h"
#include "model/optimizer.h"
#include "model/registry.h"
#include "model/task_set.h"
#include "model/transformer.h"
#include "runspec/run_config.h"

ABSL_FLAG(int, threads, 2, "intra-op threads");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(int, d_model, 128, "model width");
ABSL_FLAG(int, n_layers, 8, "transformer blocks");
ABSL_FLAG(int, n_heads, 4, "attention heads");
ABSL_FLAG(int, seq_len, 128, "training context in tokens");
ABSL_FLAG(int, train_steps, 300, "LayerSkip training steps");
ABSL_FLAG(int, batch, 16, "training rows per step");
ABSL_FLAG(double, lr, 2e-3, "peak learning rate (linear warm-up over 5% of the steps)");
ABSL_FLAG(double, max_dropout, 0.1, "LayerSkip: last layer's dropout rate");
ABSL_FLAG(double, exit_scale, 1.0, "LayerSkip: early-exit loss scale");
ABSL_FLAG(std::string, curriculum, "all", "LayerSkip: all | rotational | gradual");
ABSL_FLAG(std::string, generator, "word", "task generator for the text (tasks/)");
ABSL_FLAG(int, prompts, 8, "prompts generated from (test problems' prompts)");
ABSL_FLAG(int, gen_tokens, 128, "new tokens per prompt (no stop sequence)");
ABSL_FLAG(std::string, gen_batches, "1,8", "prompts decoded together (each a separate timing)");
ABSL_FLAG(std::string, exit_layers, "1,2,3", "draft exit layers E to try");
ABSL_FLAG(std::string, draft_tokens, "2,4,6", "draft lengths d to try");
ABSL_FLAG(int, repeats, 3, "timed runs per figure (median)");
ABSL_FLAG(bool, uncached, true, "also time decoding without the cache");

namespace {

namespace v1 = scalelab::v1;
using scalelab::model::CausalLM;
using scalelab::model::GenerateOptions;
using scalelab::model::Generation;
using scalelab::model::TransformerImpl;
using Prompts = std::vector<std::vector<int64_t>>;

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::vector<int64_t> IntList(const std::string& text) {
  std::vector<int64_t> values;
  for (absl::string_view piece : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t value = 0;
    if (absl::SimpleAtoi(piece, &value)) values.push_back(value);
  }
  return values;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void Sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// "prompt response\n" for `count` problems of `split`, concatenated, as byte tokens; and the
// prompts alone.
struct TaskText {
  std::vector<int64_t> stream;
  Prompts prompts;
};

TaskText LoadTaskText(scalelab::tasks::Split split, int64_t count) {
  v1::TaskSetSpec spec;
  spec.set_generator(absl::GetFlag(FLAGS_generator));
  spec.set_seed(1);
  absl::StatusOr<scalelab::model::TaskSet> set = scalelab::model::TaskSet::Open(spec);
  if (!set.ok()) {
    absl::FPrintF(stderr, "task set: %s\n", set.status().ToString());
    std::exit(1);
  }
  absl::StatusOr<std::vector<scalelab::tasks::Problem>> problems = set->Problems(split, 0, count);
  if (!problems.ok()) {
    absl::FPrintF(stderr, "problems: %s\n", problems.status().ToString());
    std::exit(1);
  }
  TaskText text;
  for (const scalelab::tasks::Problem& problem : *problems) {
    const std::string prompt = scalelab::model::PromptText(problem);
    const std::vector<int64_t> line = scalelab::model::EncodeBytes(
        prompt + " " + scalelab::model::ResponseText(problem, /*use_solution=*/false));
    text.stream.insert(text.stream.end(), line.begin(), line.end());
    text.prompts.push_back(scalelab::model::EncodeBytes(prompt));
  }
  return text;
}

torch::Tensor Windows(const std::vector<int64_t>& stream, int64_t rows, int64_t length,
                      const torch::Device& device) {
  const torch::Tensor all = torch::tensor(stream, torch::kLong);
  const torch::Tensor starts =
      torch::randint(0, static_cast<int64_t>(stream.size()) - length, {rows}, torch::kLong);
  std::vector<torch::Tensor> windows;
  for (int64_t row = 0; row < rows; ++row) {
    windows.push_back(all.narrow(0, starts[row].item<int64_t>(), length));
  }
  return torch::stack(windows).to(device);
}

v1::LayerSkipSpec LayerSkipFromFlags() {
  v1::LayerSkipSpec layerskip;
  layerskip.set_max_dropout(absl::GetFlag(FLAGS_max_dropout));
  layerskip.set_exit_scale(absl::GetFlag(FLAGS_exit_scale));
  layerskip.set_curriculum(absl::GetFlag(FLAGS_curriculum));
  layerskip.set_rotation(2);
  return layerskip;
}

void Train(TransformerImpl& model, const TaskText& train, const TaskText& held_out,
           const torch::Device& device) {
  const int64_t steps = absl::GetFlag(FLAGS_train_steps);
  const int64_t seq_len = absl::GetFlag(FLAGS_seq_len);
  const int64_t batch = absl::GetFlag(FLAGS_batch);
  const double peak_lr = absl::GetFlag(FLAGS_lr);
  const v1::LayerSkipSpec layerskip = LayerSkipFromFlags();
  std::unique_ptr<torch::optim::AdamW> optimizer = scalelab::model::MakeAdamW(model, peak_lr, 0.1);
  std::vector<torch::Tensor> parameters = model.parameters();
  model.train();
  const int64_t warmup = std::max<int64_t>(1, steps / 20);
  const double start = WallSeconds();
  double last_loss = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const double lr = peak_lr * std::min(1.0, static_cast<double>(step + 1) / warmup);
    scalelab::model::SetLearningRate(*optimizer, lr);
    const torch::Tensor windows = Windows(train.stream, batch, seq_len + 1, device);
    optimizer->zero_grad();
    torch::Tensor loss = model.LayerSkipLoss(windows.narrow(1, 0, seq_len),
                                             windows.narrow(1, 1, seq_len), layerskip, step, steps);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(parameters, 1.0);
    optimizer->step();
    last_loss = loss.item<double>();
  }
  Sync(device);
  const double train_s = WallSeconds() - start;
  // Each exit's loss on held-out text, every block running (eval mode).
  model.eval();
  torch::NoGradGuard no_grad;
  torch::manual_seed(99);
  const torch::Tensor windows = Windows(held_out.stream, 32, seq_len + 1, device);
  const torch::Tensor targets = windows.narrow(1, 1, seq_len).reshape({-1});
  torch::Tensor hidden = model.Embed(windows.narrow(1, 0, seq_len));
  std::string exits;
  for (int64_t layer = 0; layer < model.NumLayers(); ++layer) {
    hidden = model.RunLayers(hidden, 0, layer, layer + 1, nullptr);
    const torch::Tensor logits = model.Head(hidden);
    const double exit_loss =
        torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets)
            .item<double>();
    absl::StrAppendFormat(&exits, "%s%.4f", layer == 0 ? "" : ",", exit_loss);
  }
  absl::PrintF(
      "{\"bench\":\"layerskip_train\",\"steps\":%d,\"batch\":%d,\"seq_len\":%d,\"train_s\":%.2f,"
      "\"final_train_loss\":%.4f,\"held_out_exit_loss\":[%s]}\n",
      steps, batch, seq_len, train_s, last_loss, exits);
  std::fflush(stdout);
}

struct Timed {
  double seconds = 0;
  std::vector<Generation> generations;
  scalelab::model::SelfSpeculativeStats stats;
};

// Median seconds of `repeats` calls of `run` (outputs of the last kept).
template <typename Fn>
Timed TimeRuns(const torch::Device& device, Fn run) {
  Timed timed;
  std::vector<double> seconds;
  for (int repeat = 0; repeat < absl::GetFlag(FLAGS_repeats); ++repeat) {
    Sync(device);
    const double start = WallSeconds();
    timed.generations = run(&timed.stats);
    Sync(device);
    seconds.push_back(WallSeconds() - start);
  }
  timed.seconds = Median(seconds);
  return timed;
}

int64_t CountTokens(const std::vector<Generation>& generations) {
  int64_t tokens = 0;
  for (const Generation& generation : generations) tokens += generation.tokens.size();
  return tokens;
}

std::vector<Generation> MustGenerate(CausalLM& model, const Prompts& prompts,
                                     const GenerateOptions& options) {
  absl::StatusOr<std::vector<Generation>> generations =
      scalelab::model::Generate(model, prompts, options);
  if (!generations.ok()) {
    absl::FPrintF(stderr, "generate: %s\n", generations.status().ToString());
    std::exit(1);
  }
  return *std::move(generations);
}

// Prompts of one length (the first prompt's, repeated with different tails cut to it), so that a
// batch of them decodes as one group.
Prompts EqualLengthPrompts(const Prompts& prompts, int64_t count) {
  size_t length = prompts.front().size();
  for (const auto& prompt : prompts) length = std::min(length, prompt.size());
  Prompts equal;
  for (int64_t prompt_idx = 0; prompt_idx < count; ++prompt_idx) {
    const auto& prompt = prompts[static_cast<size_t>(prompt_idx) % prompts.size()];
    equal.emplace_back(prompt.begin(), prompt.begin() + static_cast<int64_t>(length));
  }
  return equal;
}

void BenchDecoding(TransformerImpl& model, const Prompts& all_prompts,
                   const torch::Device& device) {
  GenerateOptions options;
  options.max_new_tokens = absl::GetFlag(FLAGS_gen_tokens);
  for (int64_t batch : IntList(absl::GetFlag(FLAGS_gen_batches))) {
    const Prompts prompts = EqualLengthPrompts(all_prompts, batch);
    // Batch 1 runs every prompt one after another, so both batch sizes see the same prompts.
    auto plain = [&](GenerateOptions with) {
      return [&, with](scalelab::model::SelfSpeculativeStats*) {
        std::vector<Generation> outputs;
        if (batch == 1) {
          for (const auto& prompt : EqualLengthPrompts(all_prompts, absl::GetFlag(FLAGS_prompts))) {
            outputs.push_back(MustGenerate(model, {prompt}, with).front());
          }
          return outputs;
        }
        return MustGenerate(model, prompts, with);
      };
    };
    MustGenerate(model, {prompts.front()}, options);  // Warm-up.
    const Timed cached = TimeRuns(device, plain(options));
    const double cached_tps = static_cast<double>(CountTokens(cached.generations)) / cached.seconds;
    if (absl::GetFlag(FLAGS_uncached)) {
      GenerateOptions uncached_options = options;
      uncached_options.use_cache = false;
      const Timed uncached = TimeRuns(device, plain(uncached_options));
      const double uncached_tps =
          static_cast<double>(CountTokens(uncached.generations)) / uncached.seconds;
      absl::PrintF(
          "{\"bench\":\"generate_cache\",\"batch\":%d,\"new_tokens\":%d,\"cached_tokens_per_s\":"
          "%.1f,\"uncached_tokens_per_s\":%.1f,\"ratio\":%.2f}\n",
          batch, options.max_new_tokens, cached_tps, uncached_tps, cached_tps / uncached_tps);
      std::fflush(stdout);
    }
    for (int64_t exit_layer : IntList(absl::GetFlag(FLAGS_exit_layers))) {
      if (exit_layer < 1 || exit_layer >= model.NumLayers()) continue;
      for (int64_t draft_tokens : IntList(absl::GetFlag(FLAGS_draft_tokens))) {
        auto speculative = [&](scalelab::model::SelfSpeculativeStats* stats) {
          const Prompts& run_prompts =
              batch == 1 ? EqualLengthPrompts(all_prompts, absl::GetFlag(FLAGS_prompts)) : prompts;
          std::vector<Generation> outputs;
          *stats = {};
          auto run_group = [&](const Prompts& group) {
            scalelab::model::SelfSpeculativeStats group_stats;
            absl::StatusOr<std::vector<Generation>> generations =
                scalelab::model::GenerateSelfSpeculative(model, group, options, exit_layer,
                                                         draft_tokens, &group_stats);
            if (!generations.ok()) {
              absl::FPrintF(stderr, "self-speculative: %s\n", generations.status().ToString());
              std::exit(1);
            }
            outputs.insert(outputs.end(), generations->begin(), generations->end());
            stats->drafted += group_stats.drafted;
            stats->accepted += group_stats.accepted;
            stats->verify_passes += group_stats.verify_passes;
            stats->tokens += group_stats.tokens;
          };
          if (batch == 1) {
            for (const auto& prompt : run_prompts) run_group({prompt});
          } else {
            run_group(run_prompts);
          }
          return outputs;
        };
        // Plain greedy again right before, so that each ratio compares neighbouring runs.
        const Timed greedy = TimeRuns(device, plain(options));
        const Timed fast = TimeRuns(device, speculative);
        bool identical = greedy.generations.size() == fast.generations.size();
        for (size_t idx = 0; identical && idx < greedy.generations.size(); ++idx) {
          identical = greedy.generations[idx].tokens == fast.generations[idx].tokens;
        }
        const double greedy_tps =
            static_cast<double>(CountTokens(greedy.generations)) / greedy.seconds;
        const double fast_tps = static_cast<double>(CountTokens(fast.generations)) / fast.seconds;
        absl::PrintF(
            "{\"bench\":\"self_speculative\",\"batch\":%d,\"exit_layer\":%d,\"n_layers\":%d,"
            "\"draft_tokens\":%d,\"greedy_tokens_per_s\":%.1f,\"speculative_tokens_per_s\":%.1f,"
            "\"speedup\":%.2f,\"acceptance\":%.3f,\"tokens_per_verify\":%.2f,\"identical\":%s}\n",
            batch, exit_layer, model.NumLayers(), draft_tokens, greedy_tps, fast_tps,
            fast_tps / greedy_tps, fast.stats.AcceptanceRate(),
            static_cast<double>(fast.stats.tokens) /
                static_cast<double>(std::max<int64_t>(1, fast.stats.verify_passes)),
            identical ? "true" : "false");
        std::fflush(stdout);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  scalelab::model::ops::ConfigureCpuThreads(absl::GetFlag(FLAGS_threads));
  const torch::Device device(absl::GetFlag(FLAGS_device) == "cuda" ? torch::kCUDA : torch::kCPU);
  v1::RunConfig config;
  v1::ModelSpec& spec = *config.mutable_model();
  spec.set_family("transformer");
  spec.set_vocab_size(256);
  spec.set_d_model(absl::GetFlag(FLAGS_d_model));
  spec.set_n_layers(absl::GetFlag(FLAGS_n_layers));
  spec.set_n_heads(absl::GetFlag(FLAGS_n_heads));
  spec.set_seq_len(absl::GetFlag(FLAGS_seq_len));
  scalelab::runspec::ApplyRunDefaults(&config);
  torch::manual_seed(1);
  absl::StatusOr<std::shared_ptr<CausalLM>> built = scalelab::model::BuildModel(config.model());
  if (!built.ok()) {
    absl::FPrintF(stderr, "model: %s\n", built.status().ToString());
    return 1;
  }
  auto model = std::dynamic_pointer_cast<TransformerImpl>(*built);
  model->to(device);
  absl::PrintF(
      "{\"bench\":\"model\",\"spec\":\"%s\",\"params\":%d,\"device\":\"%s\",\"threads\":%d}\n",
      absl::StrReplaceAll(config.model().ShortDebugString(), {{"\"", "'"}}), model->NumParams(),
      device.str(), absl::GetFlag(FLAGS_threads));
  const TaskText train = LoadTaskText(scalelab::tasks::Split::kTrain, 4000);
  const TaskText held_out = LoadTaskText(scalelab::tasks::Split::kHeldOut, 400);
  const TaskText test = LoadTaskText(scalelab::tasks::Split::kTest, absl::GetFlag(FLAGS_prompts));
  Train(*model, train, held_out, device);
  BenchDecoding(*model, test.prompts, device);
  return 0;
}
