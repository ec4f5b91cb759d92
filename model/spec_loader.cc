#include "model/spec_loader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runspec/keys.h"
#include "runspec/run_config.h"
#include "runspec/spec_file.h"

namespace scalelab::model {
namespace {

// The overrides as the user typed them, for error messages.
std::string DescribeOverrides(const SpecOverrides& overrides) {
  std::vector<std::string> flags;
  for (const std::string& set : overrides.set) flags.push_back(absl::StrCat("--set=", set));
  if (overrides.device) flags.push_back(absl::StrCat("--device=", *overrides.device));
  if (overrides.threads) flags.push_back(absl::StrCat("--threads=", *overrides.threads));
  if (overrides.rank) flags.push_back(absl::StrCat("--rank=", *overrides.rank));
  if (overrides.world_size) flags.push_back(absl::StrCat("--world_size=", *overrides.world_size));
  if (overrides.local_rank) flags.push_back(absl::StrCat("--local_rank=", *overrides.local_rank));
  if (overrides.rendezvous) flags.push_back(absl::StrCat("--rendezvous=", *overrides.rendezvous));
  if (overrides.backend) flags.push_back(absl::StrCat("--backend=", *overrides.backend));
  return absl::StrJoin(flags, " ");
}

}  // namespace

absl::StatusOr<scalelab::v1::RunSpec> PrepareRunSpec(scalelab::v1::RunSpec spec,
                                                     const SpecOverrides& overrides) {
  for (const std::string& set : overrides.set) {
    const size_t eq = set.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set=", set, ": expected key=value, e.g. --set=model.d_model=128"));
    }
    if (std::optional<runspec::FieldError> error = runspec::SetRunConfigValue(
            set.substr(0, eq), set.substr(eq + 1), spec.mutable_config())) {
      return absl::InvalidArgumentError(absl::StrCat("--set=", set, ": ", error->Message()));
    }
  }
  if (overrides.device) spec.mutable_execution()->set_device(*overrides.device);
  if (overrides.threads) spec.mutable_execution()->set_threads(*overrides.threads);
  scalelab::v1::ExecutionSpec& execution = *spec.mutable_execution();
  if (overrides.rank) execution.set_rank(*overrides.rank);
  if (overrides.world_size) execution.set_world_size(*overrides.world_size);
  if (overrides.local_rank) execution.set_local_rank(*overrides.local_rank);
  if (overrides.rendezvous) execution.set_rendezvous(*overrides.rendezvous);
  if (overrides.backend) execution.set_backend(*overrides.backend);

  runspec::ApplySpecDefaults(&spec);
  runspec::ResolveDataFolders(".", &spec);
  if (absl::Status status = runspec::ValidateRunSpec(spec); !status.ok()) {
    const std::string given = DescribeOverrides(overrides);
    if (given.empty()) return status;
    return absl::InvalidArgumentError(
        absl::StrCat(status.message(), " (with overrides ", given, ")"));
  }
  return spec;
}

absl::StatusOr<scalelab::v1::RunSpec> LoadRunSpec(const std::string& path,
                                                  const SpecOverrides& overrides) {
  absl::StatusOr<scalelab::v1::RunSpec> spec = runspec::ReadRunSpecFile(path);
  if (!spec.ok()) return spec.status();
  return PrepareRunSpec(*std::move(spec), overrides);
}

}  // namespace scalelab::model
