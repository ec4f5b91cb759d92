#include "worker/trainer_command.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <openssl/evp.h>

#include <cmath>
#include <fstream>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runspec/eval_result.h"
#include "runspec/exit_codes.h"
#include "runspec/run_config.h"
#include "runspec/spec_file.h"
#include "runspec/text.h"

namespace scalelab::worker {

absl::StatusOr<v1::RunSpec> CompleteRunSpec(const TrainerInvocation& invocation,
                                            const v1::RunSpec& leased,
                                            const std::string& attempt_dir,
                                            const std::string& checkpoint_dir) {
  v1::RunSpec spec = leased;
  runspec::ResolveDataFolders(invocation.data_root, &spec);
  spec.set_output_dir(attempt_dir);
  spec.set_checkpoint_dir(checkpoint_dir);
  v1::ExecutionSpec& execution = *spec.mutable_execution();
  execution.set_threads(invocation.threads);
  execution.set_device(spec.execution().gpu_indices().empty() ? "cpu" : "cuda");
  execution.set_worker_prunes_checkpoints(true);
  runspec::ApplySpecDefaults(&spec);
  if (absl::Status status = runspec::ValidateRunSpec(spec); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("run ", spec.run_id(), " attempt ", spec.attempt(), ": ", status.message()));
  }
  return spec;
}

std::vector<std::string> BuildTrainerArgv(const TrainerInvocation& invocation,
                                          const std::string& spec_path) {
  return {invocation.trainer_path, absl::StrCat("--spec=", spec_path)};
}

std::vector<std::pair<std::string, std::string>> TrainerEnvironment(const v1::RunSpec& spec) {
  // The inventory numbers GPUs in PCI bus order; CUDA's default order is fastest first, which on
  // a node with mixed GPUs would make index 1 a different device than the one placed.
  // OpenMP threads that spin between parallel regions take the cores OpenBLAS's own pool needs
  // for the matmuls: passive waiting made training 1.5-3x faster on 2 cores (bench/README.md).
  // libgomp reads it once at load, so it must be in the environment, not set by the trainer.
  return {{"CUDA_DEVICE_ORDER", "PCI_BUS_ID"},
          {"CUDA_VISIBLE_DEVICES", absl::StrJoin(spec.execution().gpu_indices(), ",")},
          {"OMP_WAIT_POLICY", "PASSIVE"}};
}

namespace {

using Fields = google::protobuf::Map<std::string, google::protobuf::Value>;

// The value as JSON, capped for an error message.
std::string Echo(const google::protobuf::Value& value) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(value, &json).ok()) return "?";
  return runspec::Capped(json);
}

std::string TextField(const Fields& fields, const char* name) {
  auto it = fields.find(name);
  return it == fields.end() ? "" : it->second.string_value();
}

// A non-negative whole number below 2^63 from `name` (0 when absent): counts travel as JSON
// numbers, i.e. doubles, and must not turn into garbage when cast.
absl::StatusOr<int64_t> CountField(const Fields& fields, const char* name, absl::string_view what) {
  auto it = fields.find(name);
  if (it == fields.end()) return 0;
  const double value = it->second.number_value();
  if (it->second.kind_case() != google::protobuf::Value::kNumberValue || !(value >= 0) ||
      value >= 9.2e18 || value != std::floor(value)) {
    return absl::InvalidArgumentError(absl::StrCat("trainer output: ", what, " \"", name,
                                                   "\": expected a whole number >= 0, got ",
                                                   Echo(it->second)));
  }
  return static_cast<int64_t>(value);
}

absl::StatusOr<v1::Artifact> ArtifactFromFields(const Fields& fields, absl::string_view line) {
  const std::string kind = TextField(fields, "artifact");
  if ((kind != "final" && kind != "checkpoint") || TextField(fields, "path").empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trainer output is not an artifact record {\"artifact\":KIND,\"path\":P,\"step\":S}: ",
        line.substr(0, 200)));
  }
  absl::StatusOr<int64_t> step = CountField(fields, "step", "artifact");
  if (!step.ok()) return step.status();
  v1::Artifact artifact;
  artifact.set_kind(kind);
  artifact.set_location(TextField(fields, "path"));
  artifact.set_step(*step);
  return artifact;
}

// A finite number >= 0 from `name` (0 when absent).
absl::StatusOr<double> AmountField(const Fields& fields, const char* name, absl::string_view what) {
  auto it = fields.find(name);
  if (it == fields.end()) return 0.0;
  const double value = it->second.number_value();
  if (it->second.kind_case() != google::protobuf::Value::kNumberValue || !(value >= 0) ||
      !std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat("trainer output: ", what, " \"", name,
                                                   "\": expected a finite number >= 0, got ",
                                                   Echo(it->second)));
  }
  return value;
}

absl::StatusOr<v1::RunRecord> RecordFromFields(const Fields& fields, absl::string_view line) {
  if (TextField(fields, "record") != "run") {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer output is not a run record {\"record\":\"run\",\"n_params\":N,...}: ",
                     line.substr(0, 200)));
  }
  constexpr absl::string_view kWhat = "run record";
  absl::StatusOr<int64_t> n_params = CountField(fields, "n_params", kWhat);
  absl::StatusOr<int64_t> n_params_total = CountField(fields, "n_params_total", kWhat);
  absl::StatusOr<double> flops_per_token = AmountField(fields, "flops_per_token", kWhat);
  absl::StatusOr<double> tokens = AmountField(fields, "tokens", kWhat);
  absl::StatusOr<double> flops = AmountField(fields, "flops", kWhat);
  for (const absl::Status& status : {n_params.status(), n_params_total.status(),
                                     flops_per_token.status(), tokens.status(), flops.status()}) {
    if (!status.ok()) return status;
  }
  v1::RunRecord record;
  record.set_family(TextField(fields, "family"));
  record.set_n_params(*n_params);
  record.set_n_params_total(*n_params_total);
  record.set_flops_per_token(*flops_per_token);
  record.set_tokens(*tokens);
  record.set_flops(*flops);
  return record;
}

// A number from `name`: nullopt when absent or null, InvalidArgument when it is not a number.
absl::StatusOr<std::optional<double>> OptionalNumberField(const Fields& fields, const char* name,
                                                          absl::string_view what) {
  auto it = fields.find(name);
  if (it == fields.end() || it->second.kind_case() == google::protobuf::Value::kNullValue) {
    return std::nullopt;
  }
  if (it->second.kind_case() != google::protobuf::Value::kNumberValue) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trainer output: ", what, " \"", name, "\": expected a number, got ", Echo(it->second)));
  }
  return it->second.number_value();
}

// A text field that must be a string when present ("" when absent).
absl::StatusOr<std::string> StringField(const Fields& fields, const char* name,
                                        absl::string_view what) {
  auto it = fields.find(name);
  if (it == fields.end()) return std::string();
  if (it->second.kind_case() != google::protobuf::Value::kStringValue) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trainer output: ", what, " \"", name, "\": expected a string, got ", Echo(it->second)));
  }
  return it->second.string_value();
}

absl::StatusOr<v1::EvalResult> EvalFromFields(const Fields& fields) {
  constexpr absl::string_view kWhat = "evaluation result";
  absl::StatusOr<std::string> metric = StringField(fields, "eval", kWhat);
  absl::StatusOr<std::string> task_set = StringField(fields, "task_set", kWhat);
  absl::StatusOr<std::string> split = StringField(fields, "split", kWhat);
  absl::StatusOr<std::string> category = StringField(fields, "category", kWhat);
  absl::StatusOr<int64_t> step = CountField(fields, "step", kWhat);
  absl::StatusOr<int64_t> n = CountField(fields, "n", kWhat);
  absl::StatusOr<int64_t> k = CountField(fields, "k", kWhat);
  absl::StatusOr<int64_t> problems = CountField(fields, "problems", kWhat);
  absl::StatusOr<std::optional<double>> value = OptionalNumberField(fields, "value", kWhat);
  absl::StatusOr<std::optional<double>> low = OptionalNumberField(fields, "low", kWhat);
  absl::StatusOr<std::optional<double>> high = OptionalNumberField(fields, "high", kWhat);
  for (const absl::Status& status :
       {metric.status(), task_set.status(), split.status(), category.status(), step.status(),
        n.status(), k.status(), problems.status(), value.status(), low.status(), high.status()}) {
    if (!status.ok()) return status;
  }
  constexpr int64_t kMaxSamples = 1 << 30;  // n and k are int32 in the message
  for (auto [name, count] : {std::pair<const char*, int64_t>{"n", *n}, {"k", *k}}) {
    if (count > kMaxSamples) {
      return absl::InvalidArgumentError(absl::StrCat("trainer output: ", kWhat, " \"", name,
                                                     "\": expected at most ", kMaxSamples, ", got ",
                                                     count));
    }
  }
  if (!value->has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "trainer output: ", kWhat, " \"value\": expected a finite number, got null or nothing"));
  }
  v1::EvalResult eval;
  eval.set_metric(*metric);
  eval.set_task_set(*task_set);
  eval.set_split(*split);
  eval.set_category(*category);
  eval.set_step(*step);
  eval.set_n(static_cast<int32_t>(*n));
  eval.set_k(static_cast<int32_t>(*k));
  eval.set_problems(*problems);
  eval.set_value(**value);
  // An interval the trainer could not compute travels as null: the result has none.
  if (low->has_value() && high->has_value()) {
    eval.set_low(**low);
    eval.set_high(**high);
  } else if (low->has_value() != high->has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("trainer output: ", kWhat,
                                                   ": expected both \"low\" and \"high\" or "
                                                   "neither"));
  }
  if (absl::Status status = runspec::ValidateEvalResult(eval); !status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer output: ", kWhat, ": ", status.message()));
  }
  return eval;
}

}  // namespace

absl::StatusOr<TrainerLine> ParseTrainerLine(absl::string_view line) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a newer trainer may add fields
  const google::protobuf::StringPiece text(line.data(), line.size());
  TrainerLine parsed;
  // Metric lines, by far the most common, go straight into a MetricPoint; only lines that may
  // be something else are parsed generically first. A metric that merely mentions one of these
  // words (a name "record") is still a metric: the key decides, not the text.
  if (line.find("\"artifact\"") != absl::string_view::npos ||
      line.find("\"record\"") != absl::string_view::npos ||
      line.find("\"eval\"") != absl::string_view::npos) {
    google::protobuf::Struct object;
    if (google::protobuf::util::JsonStringToMessage(text, &object, options).ok()) {
      const Fields& fields = object.fields();
      if (fields.contains("artifact")) {
        absl::StatusOr<v1::Artifact> artifact = ArtifactFromFields(fields, line);
        if (!artifact.ok()) return artifact.status();
        parsed.artifact = *std::move(artifact);
        return parsed;
      }
      if (fields.contains("record") && TextField(fields, "record") == "failure") {
        TrainerFailure failure;
        const std::string name = TextField(fields, "class");
        if (!v1::FailureClass_Parse(absl::StrCat("FAILURE_CLASS_", name), &failure.failure_class) ||
            failure.failure_class == v1::FAILURE_CLASS_UNSPECIFIED) {
          return absl::InvalidArgumentError(absl::StrCat(
              "trainer output: failure record \"class\": expected a failure class such as "
              "OUT_OF_MEMORY, got \"",
              name.substr(0, 100), "\""));
        }
        failure.message = TextField(fields, "message");
        parsed.failure = std::move(failure);
        return parsed;
      }
      if (fields.contains("record")) {
        absl::StatusOr<v1::RunRecord> record = RecordFromFields(fields, line);
        if (!record.ok()) return record.status();
        parsed.record = *std::move(record);
        return parsed;
      }
      if (fields.contains("eval")) {
        absl::StatusOr<v1::EvalResult> eval = EvalFromFields(fields);
        if (!eval.ok()) return eval.status();
        parsed.eval = *std::move(eval);
        return parsed;
      }
    }
  }
  v1::MetricPoint point;
  auto status = google::protobuf::util::JsonStringToMessage(text, &point, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("trainer output is not a metric record: ", status.ToString()));
  }
  if (point.name().empty()) {
    return absl::InvalidArgumentError("trainer output: metric record without a name");
  }
  parsed.metric = std::move(point);
  return parsed;
}

absl::Status DescribeArtifactFile(v1::Artifact* artifact) {
  std::ifstream file(artifact->location(), std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("artifact ", artifact->location(), ": cannot be read"));
  }
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  EVP_DigestInit_ex(context, EVP_sha256(), nullptr);
  char buffer[1 << 16];
  int64_t size = 0;
  while (file) {
    file.read(buffer, sizeof(buffer));
    const std::streamsize got = file.gcount();
    if (got <= 0) break;
    EVP_DigestUpdate(context, buffer, static_cast<size_t>(got));
    size += got;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_size = 0;
  EVP_DigestFinal_ex(context, digest, &digest_size);
  EVP_MD_CTX_free(context);
  artifact->set_size_bytes(size);
  artifact->set_sha256(absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), digest_size)));
  return absl::OkStatus();
}

v1::FailureClass ClassifyExit(const ExitInfo& exit, bool stopped_by_worker) {
  runspec::TrainerExit trainer_exit;
  trainer_exit.exit_code = exit.exit_code;
  trainer_exit.term_signal = exit.term_signal;
  trainer_exit.stopped_by_worker = stopped_by_worker;
  return runspec::ClassifyExit(trainer_exit);
}

}  // namespace scalelab::worker
