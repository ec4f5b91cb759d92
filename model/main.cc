// scalelab-train: trains one byte-level Transformer and prints its metrics to stdout as JSON
// lines (see model/trainer.h and model/metrics.h). The worker launches it; exit codes are
// 0 ok, 1 other error, 2 invalid flags, 3 data error, 4 divergence.
//
// This file only turns flags into TrainOptions and metrics into stdout lines.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "model/metrics.h"
#include "model/train_options.h"
#include "model/trainer.h"

ABSL_FLAG(std::string, data_sources, "",
          "Required: name=/dir,... each dir holds train.bin, val.bin");
ABSL_FLAG(std::string, data_mixture, "", "name=weight,... for every source; default equal weights");
ABSL_FLAG(std::string, model_family, "transformer", "Model family; only \"transformer\"");
ABSL_FLAG(int64_t, d_model, 64, "Residual width");
ABSL_FLAG(int64_t, n_layers, 2, "Transformer blocks");
ABSL_FLAG(int64_t, n_heads, 4, "Attention heads (divides d_model)");
ABSL_FLAG(int64_t, seq_len, 64, "Context length in tokens");
ABSL_FLAG(int64_t, d_ff, 0, "MLP width; 0 means 4 * d_model");
ABSL_FLAG(int64_t, vocab_size, 256, "Vocabulary size (>= 256, byte-level data)");
ABSL_FLAG(double, tokens, 1e6, "Total training tokens");
ABSL_FLAG(int64_t, batch_tokens, 4096, "Tokens per optimizer step (a multiple of seq_len)");
ABSL_FLAG(double, lr, 3e-3, "Peak learning rate");
ABSL_FLAG(std::string, schedule, "cosine", "cosine or constant (after linear warmup)");
ABSL_FLAG(double, warmup, 0.05, "Warmup length as a fraction of the steps");
ABSL_FLAG(double, weight_decay, 0.1, "AdamW weight decay on weight matrices");
ABSL_FLAG(uint64_t, seed, 0, "Seed for init and data sampling");
ABSL_FLAG(double, eval_every_tokens, 2e5,
          "Validate every this many training tokens and at the end");
ABSL_FLAG(int64_t, val_tokens, 65536, "Validation tokens per evaluation and source");
ABSL_FLAG(int32_t, threads, 1, "Intra-op and BLAS threads");
ABSL_FLAG(std::string, device, "cpu", "cpu or cuda");

namespace {

using scalelab::model::TrainOptions;

// absl::ParseCommandLine exits with status 1 on an unknown flag or a malformed value, but the
// worker contract says invalid flags exit 2 with a message naming the flag. So every --name[=v]
// argument is checked here first with the same parser absl uses; what passes cannot fail later.
struct ValueCheck {
  std::function<bool(absl::string_view, std::string*)> parses;
  const char* expected;
};

template <typename T>
ValueCheck Check(const char* expected) {
  return {[](absl::string_view text, std::string* error) {
            T value;
            return absl::ParseFlag(text, &value, error);
          },
          expected};
}

absl::Status PrecheckArgs(int argc, char** argv) {
  const std::map<std::string, ValueCheck, std::less<>> typed = {
      {"d_model", Check<int64_t>("an integer")},
      {"n_layers", Check<int64_t>("an integer")},
      {"n_heads", Check<int64_t>("an integer")},
      {"seq_len", Check<int64_t>("an integer")},
      {"d_ff", Check<int64_t>("an integer")},
      {"vocab_size", Check<int64_t>("an integer")},
      {"tokens", Check<double>("a number such as 1e6")},
      {"batch_tokens", Check<int64_t>("an integer")},
      {"lr", Check<double>("a number such as 3e-3")},
      {"warmup", Check<double>("a number in [0, 1]")},
      {"weight_decay", Check<double>("a number")},
      {"seed", Check<uint64_t>("a non-negative integer")},
      {"eval_every_tokens", Check<double>("a number such as 2e5")},
      {"val_tokens", Check<int64_t>("an integer")},
      {"threads", Check<int32_t>("an integer")},
  };
  for (int arg_idx = 1; arg_idx < argc; ++arg_idx) {
    absl::string_view arg = argv[arg_idx];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\"; expected only --flag=value"));
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    absl::string_view negated = name;  // --nofoo sets a boolean flag foo to false.
    if (absl::FindCommandLineFlag(name) == nullptr &&
        !(absl::ConsumePrefix(&negated, "no") && absl::FindCommandLineFlag(negated) != nullptr)) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, "; see --help for the accepted flags"));
    }
    auto checker = typed.find(name);
    if (checker == typed.end()) continue;
    absl::string_view value;
    if (eq != absl::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (arg_idx + 1 < argc) {
      value = argv[++arg_idx];
    }
    std::string error;
    if (!checker->second.parses(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, "=", value, ": expected ", checker->second.expected));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainOptions> OptionsFromFlags() {
  TrainOptions options;
  absl::StatusOr<std::vector<scalelab::model::DataSource>> sources =
      scalelab::model::ParseDataSources(absl::GetFlag(FLAGS_data_sources));
  if (!sources.ok()) return sources.status();
  options.sources = *std::move(sources);
  if (absl::Status status =
          scalelab::model::ApplyDataMixture(absl::GetFlag(FLAGS_data_mixture), options.sources);
      !status.ok()) {
    return status;
  }
  absl::StatusOr<scalelab::model::LrSchedule> schedule =
      scalelab::model::ParseLrSchedule(absl::GetFlag(FLAGS_schedule));
  if (!schedule.ok()) return schedule.status();
  options.schedule = *schedule;
  options.model_family = absl::GetFlag(FLAGS_model_family);
  options.d_model = absl::GetFlag(FLAGS_d_model);
  options.n_layers = absl::GetFlag(FLAGS_n_layers);
  options.n_heads = absl::GetFlag(FLAGS_n_heads);
  options.seq_len = absl::GetFlag(FLAGS_seq_len);
  options.d_ff = absl::GetFlag(FLAGS_d_ff);
  options.vocab_size = absl::GetFlag(FLAGS_vocab_size);
  options.tokens = absl::GetFlag(FLAGS_tokens);
  options.batch_tokens = absl::GetFlag(FLAGS_batch_tokens);
  options.lr = absl::GetFlag(FLAGS_lr);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.eval_every_tokens = absl::GetFlag(FLAGS_eval_every_tokens);
  options.val_tokens = absl::GetFlag(FLAGS_val_tokens);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.device = absl::GetFlag(FLAGS_device);
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  return options;
}

// One JSON line per metric, flushed at once so the worker sees progress as it happens.
class StdoutJsonSink : public scalelab::model::MetricSink {
 public:
  void Write(const scalelab::model::Metric& metric) override {
    const std::string line = scalelab::model::FormatMetricJson(metric) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
};

int Fail(const absl::Status& status) {
  std::cerr << "scalelab-train: " << status.message() << std::endl;
  return scalelab::model::ExitCodeForStatus(status);
}

int Main(int argc, char** argv) {
  if (absl::Status status = PrecheckArgs(argc, argv); !status.ok()) return Fail(status);
  absl::ParseCommandLine(argc, argv);

  absl::StatusOr<TrainOptions> options = OptionsFromFlags();
  if (!options.ok()) return Fail(options.status());
  StdoutJsonSink sink;
  absl::StatusOr<scalelab::model::TrainSummary> summary =
      scalelab::model::Train(*options, sink, &std::cerr);
  if (!summary.ok()) return Fail(summary.status());
  return scalelab::model::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Trains a byte-level Transformer; metrics go to stdout as JSON lines.\n"
      "  scalelab-train --data_sources=name=/dir [--tokens=1e6 --d_model=64 ...]");
  // Train() already turns its exceptions into statuses; this only guards flag handling.
  try {
    return Main(argc, argv);
  } catch (const std::exception& error) {
    return Fail(absl::InternalError(error.what()));
  }
}
