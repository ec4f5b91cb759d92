#include "model/registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "model/families.h"
#include "runspec/text.h"

namespace scalelab::model {
namespace {

using Factory = std::shared_ptr<CausalLM> (*)(const scalelab::v1::ModelSpec&);

// An explicit table rather than static self-registration: static initializers in a static
// library are dropped by the linker unless something references them.
constexpr std::pair<const char*, Factory> kFamilies[] = {
    {"transformer", &BuildTransformer},
    {"mamba2", &BuildMamba2},
    {"hybrid", &BuildHybrid},
};

// Specs runspec's rules accept that a family still cannot build; checked here so that they come
// back as a Status rather than an exception from inside the factory.
absl::Status CheckBuildable(const scalelab::v1::ModelSpec& spec) {
  if (spec.family() == "hybrid" && spec.hybrid().mode() == "parallel" && spec.n_heads() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.n_heads: a parallel hybrid (model.hybrid.mode \"parallel\") splits its heads "
        "between attention and the SSM branch and needs at least 2, got ",
        spec.n_heads()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<CausalLM>> BuildModel(const scalelab::v1::ModelSpec& spec) {
  for (const auto& [family, factory] : kFamilies) {
    if (spec.family() != family) continue;
    if (absl::Status status = CheckBuildable(spec); !status.ok()) return status;
    return factory(spec);
  }
  std::vector<std::string> quoted;
  for (const std::string& family : RegisteredFamilies()) {
    quoted.push_back(absl::StrCat("\"", family, "\""));
  }
  return absl::InvalidArgumentError(absl::StrCat("model.family: expected one of ",
                                                 absl::StrJoin(quoted, ", "), ", got ",
                                                 runspec::Quoted(spec.family())));
}

std::vector<std::string> RegisteredFamilies() {
  std::vector<std::string> families;
  for (const auto& [family, factory] : kFamilies) families.push_back(family);
  std::sort(families.begin(), families.end());
  return families;
}

}  // namespace scalelab::model
