// Reading and writing the run contract (v1::RunSpec) as a file. The worker writes one per attempt
// as JSON in protobuf's JSON mapping (`<attempt folder>/spec.json`); `scalelab-train --spec=FILE`
// reads it, or a hand-written YAML or JSON file for local debugging, e.g.
//
//   kind: RUN_KIND_PRETRAIN
//   config:
//     model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 64}
//     data: {sources: {text: /data/gcide}}
//     train: {tokens: 1e6, batch_tokens: 4096, lr: 3e-3}
//
// Keys are the proto field names (lowerCamelCase JSON names are accepted too); enums by name.
// Thread-safe; only the *File functions touch the filesystem.
#ifndef SCALELAB_RUNSPEC_SPEC_FILE_H_
#define SCALELAB_RUNSPEC_SPEC_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::runspec {

// Parses a spec from JSON (text whose first non-space character is '{') or YAML. Errors are
// InvalidArgument starting with `source_name`, e.g.
//   spec.yaml:3:5: YAML syntax error: ...
//   spec.json: config.model.d_model: invalid value "big" for type TYPE_INT32
// Unknown fields are refused. No defaults are applied and nothing is validated.
absl::StatusOr<scalelab::v1::RunSpec> ParseRunSpec(std::string_view text,
                                                   std::string_view source_name);

// Reads and parses `path`. NotFound when it cannot be read; otherwise as ParseRunSpec.
absl::StatusOr<scalelab::v1::RunSpec> ReadRunSpecFile(const std::string& path);

// Pretty-printed JSON with proto field names and every field present (zeros too), so the file
// shows the whole contract.
std::string RunSpecToJson(const scalelab::v1::RunSpec& spec);

// Writes RunSpecToJson(spec) to `path` (through a temporary file and a rename, so a reader never
// sees half a file). Internal error naming the path on failure.
absl::Status WriteRunSpecFile(const std::string& path, const scalelab::v1::RunSpec& spec);

// Fills what a spec may leave out: ApplyRunDefaults on config; kind UNSPECIFIED -> PRETRAIN;
// attempt 0 -> 1; execution.device "" -> "cuda" when resources.gpus > 0, else "cpu";
// execution.threads 0 -> 1. Idempotent.
void ApplySpecDefaults(scalelab::v1::RunSpec* spec);

// Makes every relative data path of the run absolute against `root` (itself made absolute
// against the current directory when relative): the config.data.sources folders and the task
// files (config.sft.tasks.path, config.grpo.tasks.path, config.eval.tasks.tasks.path and
// config.eval.tasks.suite).
void ResolveDataFolders(const std::string& root, scalelab::v1::RunSpec* spec);

}  // namespace scalelab::runspec

#endif  // SCALELAB_RUNSPEC_SPEC_FILE_H_
