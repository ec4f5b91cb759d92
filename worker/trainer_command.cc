#include "worker/trainer_command.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <openssl/evp.h>

#include <fstream>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runspec/exit_codes.h"
#include "runspec/run_config.h"
#include "runspec/spec_file.h"

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
  return {{"CUDA_DEVICE_ORDER", "PCI_BUS_ID"},
          {"CUDA_VISIBLE_DEVICES", absl::StrJoin(spec.execution().gpu_indices(), ",")}};
}

absl::StatusOr<TrainerLine> ParseTrainerLine(absl::string_view line) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // a newer trainer may add fields
  const google::protobuf::StringPiece text(line.data(), line.size());
  TrainerLine parsed;
  if (line.find("\"artifact\"") != absl::string_view::npos) {
    google::protobuf::Struct record;
    const auto status = google::protobuf::util::JsonStringToMessage(text, &record, options);
    const auto& fields = record.fields();
    auto text_field = [&fields](const char* name) -> std::string {
      auto it = fields.find(name);
      return it == fields.end() ? "" : it->second.string_value();
    };
    const std::string kind = text_field("artifact");
    if (!status.ok() || (kind != "final" && kind != "checkpoint") || text_field("path").empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "trainer output is not an artifact record {\"artifact\":KIND,\"path\":P,\"step\":S}: ",
          line.substr(0, 200)));
    }
    v1::Artifact artifact;
    artifact.set_kind(text_field("artifact"));
    artifact.set_location(text_field("path"));
    if (auto step = fields.find("step"); step != fields.end()) {
      const double value = step->second.number_value();
      if (!(value >= 0 && value < 9e18)) {
        return absl::InvalidArgumentError(
            absl::StrCat("trainer output: artifact step out of range: ", value));
      }
      artifact.set_step(static_cast<int64_t>(value));
    }
    parsed.artifact = std::move(artifact);
    return parsed;
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
  return runspec::ClassifyExit({exit.exit_code, exit.term_signal, stopped_by_worker});
}

}  // namespace scalelab::worker
