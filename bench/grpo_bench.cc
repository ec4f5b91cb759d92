// GRPO throughput: sampling steps per second and completions (samples) per second of the GRPO
// loop (model/loops/grpo_loop.h) run through Train() on a small randomly initialised model.
//
//   build/bin/scalelab-grpo-bench [--device=cpu] [--threads=2] [--steps=12] [--prompts=8]
//       [--group=8] [--max_new_tokens=16] [--passes=1] [--beta=0] [--d_model=128]
//       [--layers=4] [--heads=4] [--digits=2]
//
// Prints one JSON line:
//   {"bench":"grpo", "config", "steps", "steps_per_s", "samples_per_s", "completion_tokens_per_s",
//    "mean_completion_len", "wall_s"}
// The rates are over the steps after the first (its cost includes LibTorch's first-call set-up):
// (steps - 1) / (time of the last step's metrics - time of the first's); the probe runs only
// before the first step and after the last, so it is not counted. A random model rarely stops
// early, so completions run to about max_new_tokens: the figures are per full-length sample.

#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/metrics.h"
#include "model/registry.h"
#include "model/trainer.h"
#include "runspec/run_config.h"

ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");
ABSL_FLAG(int, threads, 2, "intra-op threads");
ABSL_FLAG(int, steps, 12, "GRPO sampling steps");
ABSL_FLAG(int, prompts, 8, "grpo.prompts_per_step");
ABSL_FLAG(int, group, 8, "grpo.group_size");
ABSL_FLAG(int, max_new_tokens, 16, "grpo.max_new_tokens");
ABSL_FLAG(int, passes, 1, "grpo.passes");
ABSL_FLAG(double, beta, 0, "grpo.beta (a reference model when > 0)");
ABSL_FLAG(int, d_model, 128, "model width");
ABSL_FLAG(int, layers, 4, "transformer layers");
ABSL_FLAG(int, heads, 4, "attention heads");
ABSL_FLAG(int, digits, 2, "addition digits per operand (the prompts)");

namespace scalelab {
namespace {

int Run() {
  v1::RunSpec spec;
  spec.set_run_id(1);
  spec.set_attempt(1);
  spec.set_kind(v1::RUN_KIND_GRPO);
  v1::RunConfig& config = *spec.mutable_config();
  v1::ModelSpec& model = *config.mutable_model();
  model.set_family("transformer");
  model.set_d_model(absl::GetFlag(FLAGS_d_model));
  model.set_n_layers(absl::GetFlag(FLAGS_layers));
  model.set_n_heads(absl::GetFlag(FLAGS_heads));
  model.set_seq_len(64);
  config.mutable_train()->set_lr(1e-3);
  config.mutable_train()->set_schedule("constant");
  config.mutable_train()->set_seed(1);
  config.mutable_init()->set_from_run(1);
  v1::GrpoSpec& grpo = *config.mutable_grpo();
  grpo.mutable_tasks()->set_generator("addition");
  grpo.mutable_tasks()->set_digits(absl::GetFlag(FLAGS_digits));
  grpo.set_steps(absl::GetFlag(FLAGS_steps));
  grpo.set_prompts_per_step(absl::GetFlag(FLAGS_prompts));
  grpo.set_group_size(absl::GetFlag(FLAGS_group));
  grpo.set_max_new_tokens(absl::GetFlag(FLAGS_max_new_tokens));
  grpo.set_passes(absl::GetFlag(FLAGS_passes));
  grpo.set_beta(absl::GetFlag(FLAGS_beta));
  grpo.set_probe_problems(8);
  runspec::ApplyRunDefaults(&config, v1::RUN_KIND_GRPO);
  spec.mutable_execution()->set_device(absl::GetFlag(FLAGS_device));
  spec.mutable_execution()->set_threads(absl::GetFlag(FLAGS_threads));
  if (spec.execution().device() == "cuda") config.mutable_resources()->set_gpus(1);

  // Random init weights saved as the run's init artifact.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrFormat("scalelab_grpo_bench_%d", getpid());
  std::filesystem::create_directories(dir);
  const std::string weights = (dir / "init.pt").string();
  {
    absl::StatusOr<std::shared_ptr<model::CausalLM>> built = model::BuildModel(config.model());
    if (!built.ok()) {
      std::fprintf(stderr, "%s\n", built.status().ToString().c_str());
      return 1;
    }
    if (absl::Status status = model::SaveWeights(**built, weights); !status.ok()) {
      std::fprintf(stderr, "%s\n", status.ToString().c_str());
      return 1;
    }
  }
  spec.mutable_init_artifact()->set_location(weights);

  model::VectorMetricSink sink;
  absl::StatusOr<model::TrainSummary> summary = model::Train(spec, sink);
  std::filesystem::remove_all(dir);
  if (!summary.ok()) {
    std::fprintf(stderr, "%s\n", summary.status().ToString().c_str());
    return 1;
  }
  std::vector<double> times;
  for (const model::Metric& metric : sink.metrics()) {
    if (metric.name == "reward_mean") times.push_back(metric.wall_time_s);
  }
  const std::vector<double> lengths = sink.Values("completion_len");
  double mean_length = 0;
  for (double length : lengths) mean_length += length / static_cast<double>(lengths.size());
  const int steps = absl::GetFlag(FLAGS_steps);
  const double span_s = times.back() - times.front();
  const double steps_per_s = steps > 1 ? (steps - 1) / span_s : 0;
  const double samples_per_step = absl::GetFlag(FLAGS_prompts) * absl::GetFlag(FLAGS_group);
  std::printf(
      "{\"bench\":\"grpo\",\"config\":\"%s d=%d L=%d P=%d G=%d new=%d passes=%d beta=%g "
      "threads=%d\",\"steps\":%d,\"steps_per_s\":%.3f,\"samples_per_s\":%.1f,"
      "\"completion_tokens_per_s\":%.1f,\"mean_completion_len\":%.2f,\"wall_s\":%.2f}\n",
      spec.execution().device().c_str(), model.d_model(), model.n_layers(),
      absl::GetFlag(FLAGS_prompts), absl::GetFlag(FLAGS_group), absl::GetFlag(FLAGS_max_new_tokens),
      absl::GetFlag(FLAGS_passes), absl::GetFlag(FLAGS_beta), absl::GetFlag(FLAGS_threads), steps,
      steps_per_s, steps_per_s * samples_per_step, steps_per_s * samples_per_step * mean_length,
      mean_length, summary->wall_time_s);
  return 0;
}

}  // namespace
}  // namespace scalelab

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return scalelab::Run();
}
