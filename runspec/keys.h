// The dotted-key language that names every RunConfig field ("model.d_model", "train.tokens",
// "data.mixture.rephrased"), and setting a field from its text. Used by the manifest parser (the
// `base` section and grid axes), by sweep expansion, and by `scalelab-train --set` overrides.
//
// Keys are the proto field names joined by dots. For a map field the rest of the key after the
// field is the map key, so "data.mixture.rephrased" names the mixture weight of the source
// "rephrased" (a source name may itself contain dots). Every RunConfig field is reachable by
// reflection, so a new proto field needs no code here.
//
// Every function here is pure: no I/O, no shared state, safe to call from any thread.
#ifndef SCALELAB_RUNSPEC_KEYS_H_
#define SCALELAB_RUNSPEC_KEYS_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::runspec {

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

// "one of the keys a, b, c": the fields of `descriptor`, for error messages.
std::string KeysOf(const google::protobuf::Descriptor& descriptor);

}  // namespace scalelab::runspec

#endif  // SCALELAB_RUNSPEC_KEYS_H_
