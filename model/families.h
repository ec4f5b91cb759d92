// The factory of each model family, declared without LibTorch so that model/registry.cc (the
// table from model.family to factory) compiles without it. Each is defined next to its model.
// Internal to model/: everything else builds models through model/registry.h.

#ifndef SCALELAB_MODEL_FAMILIES_H_
#define SCALELAB_MODEL_FAMILIES_H_

#include <memory>

#include "scalelab/v1/common.pb.h"

namespace scalelab::model {

class CausalLM;

// "transformer": model/transformer.h.
std::shared_ptr<CausalLM> BuildTransformer(const scalelab::v1::ModelSpec& spec);
// "mamba2": model/mamba2.h.
std::shared_ptr<CausalLM> BuildMamba2(const scalelab::v1::ModelSpec& spec);
// "hybrid": model/hybrid.h.
std::shared_ptr<CausalLM> BuildHybrid(const scalelab::v1::ModelSpec& spec);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_FAMILIES_H_
