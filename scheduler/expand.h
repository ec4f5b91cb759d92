// Run configurations: the dotted-key language that names every RunConfig field, the defaults and
// validation rules of one run, and the expansion of a sweep into its runs.
//
// Keys are the proto field names joined by dots ("model.d_model", "train.tokens"). For a map field
// the rest of the key after the field is the map key, so "data.mixture.rephrased" names the
// mixture weight of the source "rephrased" (a source name may itself contain dots).
//
// Every function here is pure: no I/O, no shared state, safe to call from any thread.
#ifndef SCALELAB_SCHEDULER_EXPAND_H_
#define SCALELAB_SCHEDULER_EXPAND_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::scheduler {

// The most runs one sweep may expand to.
inline constexpr int kMaxRunsPerSweep = 10000;

// A rejected RunConfig key or value, in parts, so that callers can place it in their own message
// (the manifest parser adds "file:line:" and the "base." or "sweep.grid" prefix).
struct FieldError {
  // Dotted key relative to RunConfig that the error is about: "model.d_model" for a bad value,
  // the enclosing level ("model", or "" for RunConfig itself) for an unknown key.
  std::string path;
  // What was expected, as a noun phrase: "a positive integer", "one of the keys family, ...".
  std::string expected;
  // What was found, as shown to the user: "\"big\"" for text, "0" for a stored number.
  std::string found;
  // The keys whose values the failed rule read, `path` first. A rule relating two fields (d_model
  // divisible by n_heads) lists both; callers use this to tell which rules a sweep axis affects.
  std::vector<std::string> involves;

  // "<prefix>.<path>: expected <expected>, got <found>"; the dot is left out when either side is
  // empty, and "RunConfig" stands in when both are.
  std::string Message(std::string_view prefix = "") const;
};

// True when one dotted key is the other or lies under it ("data.mixture" and
// "data.mixture.web"): a change to one can change the other.
bool KeysOverlap(std::string_view a, std::string_view b);

// What a dotted RunConfig key names.
enum class KeyShape {
  kMessage,  // a nested message: "model"
  kMap,      // a whole map field: "data.mixture"
  kValue,    // one value: a scalar field "model.d_model" or a map entry "data.mixture.web"
};

// Resolves `dotted_key` against the RunConfig descriptor and stores its shape in `*shape`.
// Returns an error for an empty component, an unknown field (listing the valid keys at that level)
// or a key that continues past a scalar field.
std::optional<FieldError> ResolveRunConfigKey(std::string_view dotted_key, KeyShape* shape);

// Sets the value named by `dotted_key` (which must have shape kValue) from its text. Integer fields
// accept integers and exact-integer decimal or scientific notation ("2e7" -> 20000000, "64.0"),
// within the field's range; floating-point fields accept any finite number; string fields take the
// text as is; bool fields take true or false; enum fields take a value name. A map entry is
// created or replaced. On error `*config` may have gained empty submessages but no value changes.
std::optional<FieldError> SetRunConfigValue(std::string_view dotted_key, std::string_view value,
                                            scalelab::v1::RunConfig* config);

// SetRunConfigValue returning InvalidArgument with FieldError::Message() as the message, e.g.
//   model.d_model: expected an integer, got "2.5"
//   model: expected one of the keys family, d_model, ..., got "d_modle"
absl::Status ApplyOverride(std::string_view dotted_key, std::string_view value,
                           scalelab::v1::RunConfig* config);

// Fills fields left at 0 or empty with their defaults:
//   model.family "transformer", model.vocab_size 256, train.schedule "cosine",
//   train.weight_decay 0.1, resources.cpus 1 when resources.gpus is 0, data.mixture weight 1.0 for
//   every source when the mixture is empty, eval.val_tokens 65536,
//   eval.every_tokens train.tokens / 10.
// model.d_ff stays 0, which the trainer reads as 4 * d_model. Idempotent.
// (proto3 cannot tell "0" from "unset", so weight_decay cannot be configured to exactly 0.)
void ApplyRunDefaults(scalelab::v1::RunConfig* config);

// Checks every rule of one run (after defaults) and returns the violations in a fixed order:
// model.family is "transformer"; d_model, n_layers, n_heads, seq_len positive; d_model divisible
// by n_heads; d_ff >= 0; vocab_size in [2, 65536]; at least one data source, each with a non-empty
// folder; every mixture key names a source; weights finite, >= 0, with a positive sum;
// train.tokens > 0; batch_tokens > 0 and divisible by seq_len; lr > 0; schedule "cosine" or
// "constant"; warmup in [0, 1); weight_decay >= 0; eval.every_tokens > 0; eval.val_tokens > 0;
// resources.gpus >= 0 and cpus >= 0. Floating-point values must be finite.
std::vector<FieldError> CheckRunConfig(const scalelab::v1::RunConfig& config);

// The first violation of CheckRunConfig as InvalidArgument ("model.d_model: expected a positive
// integer, got 0"), or OK.
absl::Status ValidateRunConfig(const scalelab::v1::RunConfig& config);

// One point of a sweep.
struct ExpandedRun {
  int index = 0;                   // position in the expansion, from 0
  scalelab::v1::RunConfig config;  // base + overrides + defaults; passes ValidateRunConfig
  // Swept key -> its value for this run, written as in the spec ("train.tokens" -> "5e6").
  std::map<std::string, std::string> overrides;
};

// Expands `spec.sweep` into runs: the cross product of the grid axes in order, the first axis
// varying slowest. Each run is spec.base with that point's overrides applied, then
// ApplyRunDefaults, then ValidateRunConfig. No grid gives one run with no overrides.
//
// Callers normally pass a spec that has been through ApplySweepDefaults (manifest.h), so that
// defaults taken from the base (data.mixture) are in place before the overrides.
//
// Returns InvalidArgument for an axis with an empty key, a repeated key, or no values; more than
// kMaxRunsPerSweep runs; an override that does not apply; or a run that fails validation, naming
// the run and its overrides, e.g.
//   run 3 (model.d_model=100, train.tokens=1e6): model.d_model: expected a multiple of
//   model.n_heads (8), got 100
absl::StatusOr<std::vector<ExpandedRun>> ExpandSweep(const scalelab::v1::SweepSpec& spec);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_EXPAND_H_
