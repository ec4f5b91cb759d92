#include "model/trainer.h"

#include <dlfcn.h>
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "model/data.h"
#include "model/transformer.h"

namespace scalelab::model {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// LibTorch sizes its intra-op pool with set_num_threads, but the matmuls go to OpenBLAS, whose
// pthread build keeps its own pool sized to every core. Two runs sharing a 2-core machine would
// then oversubscribe it, so the BLAS pool is capped too. Looked up at run time because which BLAS
// LibTorch loaded is a packaging detail; absent, there is nothing to cap.
void SetBlasThreads(int threads) {
  using SetThreadsFn = void (*)(int);
  if (auto fn = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    fn(threads);
  }
}

void ConfigureThreads(int threads) {
  torch::set_num_threads(threads);
  SetBlasThreads(threads);
  // The inter-op pool can be sized only once per process, before first use; later runs in the
  // same process (tests) keep the first size, which is harmless since nothing here uses it.
  static std::once_flag interop_once;
  std::call_once(interop_once, [threads] {
    try {
      torch::set_num_interop_threads(threads);
    } catch (const c10::Error&) {
    }
  });
}

// A source's validation windows, cut once and kept on the device for every evaluation.
struct ValidationSet {
  std::string name;
  double weight = 0;      // Normalized mixture weight.
  torch::Tensor inputs;   // int64 [windows, seq_len]
  torch::Tensor targets;  // int64 [windows, seq_len]
};

torch::Tensor ToTensor(std::vector<int64_t>& values, int64_t rows, int64_t cols,
                       const torch::Device& device) {
  // from_blob borrows the vector; the copy (clone or device transfer) makes the tensor own it.
  torch::Tensor view = torch::from_blob(values.data(), {rows, cols}, torch::kLong);
  return device.is_cpu() ? view.clone() : view.to(device);
}

// Mean cross-entropy (nats/token) over all windows, in chunks of `chunk_windows` so evaluation
// never needs more activation memory than a training step.
double EvaluateLoss(Transformer& model, const ValidationSet& val, int64_t chunk_windows) {
  torch::NoGradGuard no_grad;
  model->eval();
  const int64_t windows = val.inputs.size(0);
  double loss_sum = 0;
  for (int64_t first = 0; first < windows; first += chunk_windows) {
    const int64_t count = std::min(chunk_windows, windows - first);
    torch::Tensor loss =
        model->Loss(val.inputs.narrow(0, first, count), val.targets.narrow(0, first, count));
    loss_sum += loss.item<double>() * static_cast<double>(count);
  }
  model->train();
  return loss_sum / static_cast<double>(windows);
}

// Holds everything one run needs so the loop reads top to bottom.
class Run {
 public:
  Run(const TrainOptions& options, std::vector<SourceData> sources, MetricSink& sink,
      std::ostream* log, Clock::time_point start)
      : options_(options), sources_(std::move(sources)), sink_(sink), log_(log), start_(start) {}

  absl::StatusOr<TrainSummary> Execute();

 private:
  void Emit(int64_t step, const std::string& name, double value) {
    sink_.Write(Metric{step, step * options_.batch_tokens, name, value, SecondsSince(start_)});
  }
  double Validate(int64_t step);  // Emits val metrics; returns the mixture-weighted loss.
  void LogStart(int64_t steps) const;

  const TrainOptions& options_;
  std::vector<SourceData> sources_;
  MetricSink& sink_;
  std::ostream* log_;
  Clock::time_point start_;
  torch::Device device_{torch::kCPU};
  Transformer model_{nullptr};
  std::vector<ValidationSet> val_sets_;
  TrainSummary summary_;
};

double Run::Validate(int64_t step) {
  double mixture_loss = 0;
  for (const ValidationSet& val : val_sets_) {
    const double loss = EvaluateLoss(model_, val, options_.BatchSize());
    if (val_sets_.size() > 1) Emit(step, "val_loss/" + val.name, loss);
    mixture_loss += val.weight * loss;
  }
  Emit(step, "val_loss", mixture_loss);
  return mixture_loss;
}

void Run::LogStart(int64_t steps) const {
  if (log_ == nullptr) return;
  std::string mixture;
  for (const SourceData& source : sources_) {
    absl::StrAppend(&mixture, mixture.empty() ? "" : ",", source.name, "=",
                    absl::StrFormat("%.3g", source.weight));
  }
  *log_ << absl::StrFormat(
               "scalelab-train: %s d_model=%d n_layers=%d n_heads=%d d_ff=%d seq_len=%d | "
               "%d non-embedding params (%d total) | %d steps x %d tokens, lr=%g %s | data %s | "
               "%s, %d thread(s)",
               options_.model_family, options_.d_model, options_.n_layers, options_.n_heads,
               options_.EffectiveDff(), options_.seq_len, summary_.n_params,
               summary_.n_params_total, steps, options_.batch_tokens, options_.lr,
               LrScheduleName(options_.schedule), mixture, options_.device, options_.threads)
        << std::endl;
}

absl::StatusOr<TrainSummary> Run::Execute() {
  if (options_.device == "cuda") {
    if (!torch::cuda::is_available()) {
      return absl::InvalidArgumentError(
          "--device=cuda: CUDA not available (torch::cuda::is_available() is false); expected "
          "--device=cpu on this machine");
    }
    device_ = torch::Device(torch::kCUDA);
  }
  ConfigureThreads(options_.threads);
  torch::manual_seed(options_.seed);

  TransformerConfig config;
  config.vocab_size = options_.vocab_size;
  config.d_model = options_.d_model;
  config.n_layers = options_.n_layers;
  config.n_heads = options_.n_heads;
  config.seq_len = options_.seq_len;
  config.d_ff = options_.EffectiveDff();
  model_ = Transformer(config);
  model_->to(device_);
  model_->train();

  std::vector<torch::Tensor> decay;
  std::vector<torch::Tensor> no_decay;
  model_->SplitForWeightDecay(decay, no_decay);
  auto adam = torch::optim::AdamWOptions(options_.lr)
                  .betas({0.9, 0.95})
                  .weight_decay(options_.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(adam));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(adam).weight_decay(0.0)));
  torch::optim::AdamW optimizer(std::move(groups), adam);
  const std::vector<torch::Tensor> parameters = model_->parameters();

  double weight_sum = 0;
  for (const SourceData& source : sources_) weight_sum += source.weight;
  std::vector<const ByteShard*> train_shards;
  std::vector<double> weights;
  const int64_t val_windows = NumValidationWindows(options_.val_tokens, options_.seq_len);
  for (SourceData& source : sources_) {
    source.weight /= weight_sum;
    train_shards.push_back(&source.train);
    weights.push_back(source.weight);
    TokenBatch windows = ValidationWindows(source.val, options_.seq_len, 0, val_windows);
    val_sets_.push_back(
        ValidationSet{source.name, source.weight,
                      ToTensor(windows.inputs, val_windows, options_.seq_len, device_),
                      ToTensor(windows.targets, val_windows, options_.seq_len, device_)});
  }
  BatchSampler sampler(std::move(train_shards), weights, options_.seq_len, options_.seed);

  const int64_t steps = options_.NumSteps();
  const int64_t batch_size = options_.BatchSize();
  const int64_t report_every = std::max<int64_t>(1, steps / 100);
  summary_.steps = steps;
  summary_.n_params = model_->NumNonEmbeddingParams();
  summary_.n_params_total = model_->NumParams();
  LogStart(steps);
  Emit(0, "n_params", static_cast<double>(summary_.n_params));
  Emit(0, "n_params_total", static_cast<double>(summary_.n_params_total));

  TokenBatch batch;
  double interval_loss_sum = 0;
  int64_t interval_steps = 0;
  double interval_train_s = 0;
  double total_train_s = 0;
  for (int64_t step_idx = 0; step_idx < steps; ++step_idx) {
    const Clock::time_point step_start = Clock::now();
    const double lr =
        LearningRateAt(step_idx, steps, options_.lr, options_.warmup, options_.schedule);
    for (torch::optim::OptimizerParamGroup& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    sampler.Sample(batch_size, batch);
    torch::Tensor inputs = ToTensor(batch.inputs, batch_size, options_.seq_len, device_);
    torch::Tensor targets = ToTensor(batch.targets, batch_size, options_.seq_len, device_);

    optimizer.zero_grad();
    torch::Tensor loss = model_->Loss(inputs, targets);
    const double loss_value = loss.item<double>();
    const int64_t step = step_idx + 1;
    if (!std::isfinite(loss_value)) {
      return absl::AbortedError(absl::StrCat("training diverged at step ", step,
                                             ": train_loss=", loss_value, "; run stopped"));
    }
    loss.backward();
    torch::nn::utils::clip_grad_norm_(parameters, 1.0);
    optimizer.step();

    interval_loss_sum += loss_value;
    ++interval_steps;
    const double step_s = SecondsSince(step_start);
    interval_train_s += step_s;
    total_train_s += step_s;

    const bool last = step == steps;
    if (step % report_every == 0 || last) {
      summary_.final_train_loss = interval_loss_sum / static_cast<double>(interval_steps);
      Emit(step, "train_loss", summary_.final_train_loss);
      Emit(step, "lr", lr);
      Emit(step, "tokens_per_s",
           static_cast<double>(interval_steps * options_.batch_tokens) / interval_train_s);
      interval_loss_sum = 0;
      interval_steps = 0;
      interval_train_s = 0;
    }
    const double tokens_before = static_cast<double>(step_idx * options_.batch_tokens);
    const double tokens_after = static_cast<double>(step * options_.batch_tokens);
    const bool crossed_eval = std::floor(tokens_after / options_.eval_every_tokens) >
                              std::floor(tokens_before / options_.eval_every_tokens);
    if (crossed_eval || last) summary_.final_val_loss = Validate(step);
  }

  summary_.tokens = steps * options_.batch_tokens;
  summary_.wall_time_s = SecondsSince(start_);
  summary_.train_tokens_per_s = static_cast<double>(summary_.tokens) / total_train_s;
  if (log_ != nullptr) {
    *log_ << absl::StrFormat(
                 "scalelab-train: done %d steps, %d tokens in %.1f s (%.0f train tokens/s); "
                 "train_loss=%.4f val_loss=%.4f",
                 steps, summary_.tokens, summary_.wall_time_s, summary_.train_tokens_per_s,
                 summary_.final_train_loss, summary_.final_val_loss)
          << std::endl;
  }
  return summary_;
}

}  // namespace

absl::StatusOr<TrainSummary> Train(const TrainOptions& options, MetricSink& sink,
                                   std::ostream* log) {
  const Clock::time_point start = Clock::now();
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  // The one place exceptions become statuses. OutOfMemoryError derives from c10::Error and so
  // must come first; bad_alloc can come from loading a large token file as well as from LibTorch.
  try {
    std::vector<SourceData> sources;
    for (const DataSource& source : options.sources) {
      absl::StatusOr<SourceData> data = LoadSource(source, options.seq_len);
      if (!data.ok()) {
        return absl::Status(data.status().code(), absl::StrCat("data source \"", source.name,
                                                               "\": ", data.status().message()));
      }
      sources.push_back(*std::move(data));
    }
    Run run(options, std::move(sources), sink, log, start);
    return run.Execute();
  } catch (const c10::OutOfMemoryError& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("out of memory: ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    return absl::InternalError(absl::StrCat("LibTorch error: ", error.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError("out of host memory");
  } catch (const std::exception& error) {
    return absl::InternalError(absl::StrCat("error during training: ", error.what()));
  }
}

int ExitCodeForStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitInvalidOptions;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kDataLoss:
      return kExitDataError;
    case absl::StatusCode::kAborted:
      return kExitDiverged;
    default:
      return kExitOtherError;
  }
}

}  // namespace scalelab::model
