#include "worker/trainer_command.h"

#include <google/protobuf/util/json_util.h>
#include <signal.h>

#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace scalelab::worker {
namespace {

std::string Number(double value) { return absl::StrFormat("%.17g", value); }

std::string ResolvePath(const std::string& root, const std::string& path) {
  if (path.empty() || path[0] == '/' || root.empty()) return path;
  return absl::StrCat(root, "/", path);
}

}  // namespace

absl::StatusOr<std::vector<std::string>> BuildTrainerArgv(const TrainerInvocation& invocation,
                                                          const v1::RunConfig& config) {
  if (config.data().sources().empty()) {
    return absl::InvalidArgumentError("data.sources: expected at least one source, got none");
  }
  // Sorted so the command line of a run is the same on every worker.
  std::map<std::string, std::string> sources(config.data().sources().begin(),
                                             config.data().sources().end());
  std::map<std::string, double> mixture(config.data().mixture().begin(),
                                        config.data().mixture().end());
  std::vector<std::string> source_args;
  for (const auto& [name, path] : sources) {
    source_args.push_back(absl::StrCat(name, "=", ResolvePath(invocation.data_root, path)));
  }
  std::vector<std::string> mixture_args;
  for (const auto& [name, weight] : mixture) {
    mixture_args.push_back(absl::StrCat(name, "=", Number(weight)));
  }
  const v1::ModelSpec& model = config.model();
  const v1::TrainSpec& train = config.train();
  const v1::EvalSpec& eval = config.eval();
  std::vector<std::string> argv = {
      invocation.trainer_path,
      absl::StrCat("--data_sources=", absl::StrJoin(source_args, ",")),
      absl::StrCat("--model_family=", model.family().empty() ? "transformer" : model.family()),
      absl::StrCat("--d_model=", model.d_model()),
      absl::StrCat("--n_layers=", model.n_layers()),
      absl::StrCat("--n_heads=", model.n_heads()),
      absl::StrCat("--seq_len=", model.seq_len()),
      absl::StrCat("--d_ff=", model.d_ff()),
      absl::StrCat("--vocab_size=", model.vocab_size() > 0 ? model.vocab_size() : 256),
      absl::StrCat("--tokens=", Number(train.tokens())),
      absl::StrCat("--batch_tokens=", train.batch_tokens()),
      absl::StrCat("--lr=", Number(train.lr())),
      absl::StrCat("--schedule=", train.schedule().empty() ? "cosine" : train.schedule()),
      absl::StrCat("--warmup=", Number(train.warmup())),
      absl::StrCat("--weight_decay=", Number(train.weight_decay())),
      absl::StrCat("--seed=", train.seed()),
      absl::StrCat("--eval_every_tokens=", Number(eval.every_tokens())),
      absl::StrCat("--val_tokens=", Number(eval.val_tokens())),
      absl::StrCat("--threads=", invocation.threads),
      absl::StrCat("--device=", config.resources().gpus() > 0 ? "cuda" : "cpu"),
  };
  if (!mixture_args.empty()) {
    argv.push_back(absl::StrCat("--data_mixture=", absl::StrJoin(mixture_args, ",")));
  }
  return argv;
}

absl::StatusOr<v1::MetricPoint> ParseMetricLine(absl::string_view line) {
  v1::MetricPoint point;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a newer trainer may add fields
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &point, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer output is not a metric record: ", status.ToString()));
  }
  if (point.name().empty()) {
    return absl::InvalidArgumentError("trainer output: metric record without a name");
  }
  return point;
}

v1::FailureClass ClassifyExit(const ExitInfo& exit, bool stopped_by_worker) {
  if (stopped_by_worker) return v1::FAILURE_CLASS_CANCELLED;
  if (exit.term_signal == 0) {
    if (exit.exit_code == 0) return v1::FAILURE_CLASS_UNSPECIFIED;
    // 1..4 are the trainer's own verdicts on the run: code, options, data or divergence.
    if (exit.exit_code >= 1 && exit.exit_code <= 4) return v1::FAILURE_CLASS_USER;
    return v1::FAILURE_CLASS_SYSTEM_SOFTWARE;  // 127: exec failed, or an unknown exit
  }
  switch (exit.term_signal) {
    case SIGKILL:
      // Not sent by the worker: the kernel's OOM killer is by far the usual sender.
      return v1::FAILURE_CLASS_OUT_OF_MEMORY;
    case SIGSEGV:
    case SIGABRT:
    case SIGFPE:
    case SIGILL:
      return v1::FAILURE_CLASS_USER;  // the training code crashed
    case SIGBUS:
      return v1::FAILURE_CLASS_HARDWARE_TRANSIENT;
    default:
      return v1::FAILURE_CLASS_SYSTEM_SOFTWARE;
  }
}

}  // namespace scalelab::worker
