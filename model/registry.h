// Builds a model from its v1::ModelSpec by model.family. Adding a family: implement CausalLM
// (model/causal_lm.h), declare its factory in model/families.h and add one row to the table in
// model/registry.cc. Adding a ModelSpec field touches only the proto, runspec/run_config.cc (its
// default and rule) and the family that reads it.
//
// Torch-free header: CausalLM is only forward-declared; include model/causal_lm.h to use one.
// Thread-safe (the table is immutable).

#ifndef SCALELAB_MODEL_REGISTRY_H_
#define SCALELAB_MODEL_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

class CausalLM;

// A freshly initialized model of `spec.family()` on the CPU, in training mode. `spec` must
// satisfy runspec's rules (defaults applied, ValidateRunConfig ok); only the family is checked
// here, since runspec's validator already refuses unknown families. Errors: kInvalidArgument
// naming model.family and the registered families, e.g.
//   model.family: expected one of "hybrid", "mamba2", "transformer", got "mamba"
// and a parallel hybrid with fewer than 2 heads (model.n_heads).
absl::StatusOr<std::shared_ptr<CausalLM>> BuildModel(const scalelab::v1::ModelSpec& spec);

// The registered family names, sorted.
std::vector<std::string> RegisteredFamilies();

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_REGISTRY_H_
