// How scalelab-train turns its --spec file and local-debugging overrides into the RunSpec it
// trains: read -> --set overrides -> --device/--threads -> runspec::ApplySpecDefaults ->
// runspec::ResolveDataFolders(current directory) -> runspec::ValidateRunSpec. Every default and
// rule is runspec's; this only sequences them and names the flag an error came from. Torch-free.

#ifndef SCALELAB_MODEL_SPEC_LOADER_H_
#define SCALELAB_MODEL_SPEC_LOADER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

// Overrides on top of the spec file, for running by hand. The worker passes none.
struct SpecOverrides {
  // "key=value" texts of --set, applied in order: a dotted RunConfig key (runspec/keys.h, e.g.
  // "model.d_model", "data.sources.web") and its value, which may itself contain '=' and ','.
  std::vector<std::string> set;
  std::optional<std::string> device;  // --device: replaces execution.device.
  std::optional<int> threads;         // --threads: replaces execution.threads.
  // Data parallelism by hand (model/dist.h): --rank, --world_size and --rendezvous replace
  // execution.rank, .world_size and .rendezvous; --local_rank and --backend likewise.
  std::optional<int> rank;
  std::optional<int> world_size;
  std::optional<int> local_rank;
  std::optional<std::string> rendezvous;
  std::optional<std::string> backend;
};

// The validated spec. Errors are kInvalidArgument (kNotFound for an unreadable file):
//   --set=model.d_model=big: model.d_model: expected an integer, got "big"
//   --set=lr: expected key=value
//   config.train.batch_tokens: expected ..., got 100 (with overrides --set=model.seq_len=64)
// A validation error gains the overrides given, since they may be its cause.
absl::StatusOr<scalelab::v1::RunSpec> LoadRunSpec(const std::string& path,
                                                  const SpecOverrides& overrides);

// LoadRunSpec after reading: the same steps on a spec already in memory.
absl::StatusOr<scalelab::v1::RunSpec> PrepareRunSpec(scalelab::v1::RunSpec spec,
                                                     const SpecOverrides& overrides);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_SPEC_LOADER_H_
