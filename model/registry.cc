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
};

}  // namespace

absl::StatusOr<std::shared_ptr<CausalLM>> BuildModel(const scalelab::v1::ModelSpec& spec) {
  for (const auto& [family, factory] : kFamilies) {
    if (spec.family() == family) return factory(spec);
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
