#include "scheduler/expand.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace scalelab::scheduler {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::scalelab::v1::RunConfig;
using ::scalelab::v1::SweepSpec;

// The public API takes std::string_view; this absl build has its own string_view type.
absl::string_view Absl(std::string_view text) {
  return absl::string_view(text.data(), text.size());
}

std::string Quoted(absl::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}

std::string JoinKey(absl::string_view parent, absl::string_view child) {
  if (parent.empty()) return std::string(child);
  if (child.empty()) return std::string(parent);
  return absl::StrCat(parent, ".", child);
}

std::string KeysOf(const Descriptor& descriptor) {
  std::vector<std::string> names;
  for (int field_idx = 0; field_idx < descriptor.field_count(); ++field_idx) {
    names.push_back(descriptor.field(field_idx)->name());
  }
  return absl::StrCat("one of the keys ", absl::StrJoin(names, ", "));
}

// Where a dotted key leads.
struct KeyTarget {
  KeyShape shape = KeyShape::kMessage;
  Message* holder = nullptr;  // the message that holds `field`; null when only resolving
  const FieldDescriptor* field = nullptr;
  std::string map_key;  // for a map entry
};

// The one walker behind ResolveRunConfigKey, SetRunConfigValue (and so ApplyOverride and the
// manifest's base section): every RunConfig field is reachable by its proto name and nothing else
// is. With a non-null `config` it also descends into the message, creating submessages on the way.
std::optional<FieldError> WalkKey(absl::string_view dotted_key, RunConfig* config,
                                  KeyTarget* target) {
  const std::vector<absl::string_view> parts = absl::StrSplit(dotted_key, '.');
  for (absl::string_view part : parts) {
    if (part.empty()) {
      return FieldError{
          "", "a dotted key of non-empty names such as \"model.d_model\"", Quoted(dotted_key), {}};
    }
  }
  const Descriptor* descriptor = RunConfig::descriptor();
  Message* holder = config;
  std::string walked;
  for (size_t part_idx = 0; part_idx < parts.size(); ++part_idx) {
    const FieldDescriptor* field = descriptor->FindFieldByName(std::string(parts[part_idx]));
    if (field == nullptr) {
      return FieldError{walked, KeysOf(*descriptor), Quoted(parts[part_idx]), {}};
    }
    const std::string field_path = JoinKey(walked, parts[part_idx]);
    const bool is_last = part_idx + 1 == parts.size();
    if (field->is_map()) {
      if (is_last) {
        *target = {KeyShape::kMap, holder, field, ""};
        return std::nullopt;
      }
      const Descriptor& entry = *field->message_type();
      if (entry.map_key()->cpp_type() != FieldDescriptor::CPPTYPE_STRING ||
          entry.map_value()->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        return FieldError{field_path,
                          "no key inside it (only maps of names to values take one)",
                          Quoted(dotted_key),
                          {}};
      }
      // The rest of the key is the map key, dots and all: source names may contain dots.
      std::vector<absl::string_view> rest(parts.begin() + part_idx + 1, parts.end());
      *target = {KeyShape::kValue, holder, field, absl::StrJoin(rest, ".")};
      return std::nullopt;
    }
    if (field->is_repeated()) {
      return FieldError{field_path,
                        "a key naming a single value (lists cannot be set by key)",
                        Quoted(dotted_key),
                        {}};
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (is_last) {
        *target = {KeyShape::kMessage, holder, field, ""};
        return std::nullopt;
      }
      descriptor = field->message_type();
      if (holder != nullptr) holder = holder->GetReflection()->MutableMessage(holder, field);
      walked = field_path;
      continue;
    }
    if (!is_last) {
      return FieldError{
          field_path, "no further key (it is a single value)", Quoted(parts[part_idx + 1]), {}};
    }
    *target = {KeyShape::kValue, holder, field, ""};
    return std::nullopt;
  }
  return FieldError{"", "a key", Quoted(dotted_key), {}};  // unreachable: parts is never empty
}

// Parses an integer written plainly ("20000000") or as a floating-point literal that is exactly
// an integer ("2e7", "64.0"): manifests write token counts in scientific notation.
// Returns false for text that is not an integer; sets *out_of_range for one beyond int64.
bool ParseIntegral(absl::string_view text, int64_t* value, bool* out_of_range) {
  *out_of_range = false;
  if (absl::SimpleAtoi(text, value)) return true;
  double number = 0;
  if (!absl::SimpleAtod(text, &number) || !std::isfinite(number) || number != std::trunc(number)) {
    return false;
  }
  // 2^63 is the first double past the int64 range; both bounds are exact in double.
  if (number < -9223372036854775808.0 || number >= 9223372036854775808.0) {
    *out_of_range = true;
    return false;
  }
  *value = static_cast<int64_t>(number);
  return true;
}

// Sets one scalar field of `message` from text. Returns what was expected on failure, leaving
// the field unchanged.
std::optional<std::string> SetScalarFromText(absl::string_view text, const FieldDescriptor& field,
                                             Message* message) {
  const Reflection& reflection = *message->GetReflection();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      int64_t low = std::numeric_limits<int64_t>::min();
      int64_t high = std::numeric_limits<int64_t>::max();
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
        low = std::numeric_limits<int32_t>::min();
        high = std::numeric_limits<int32_t>::max();
      } else if (field.cpp_type() == FieldDescriptor::CPPTYPE_UINT32) {
        low = 0;
        high = std::numeric_limits<uint32_t>::max();
      } else if (field.cpp_type() == FieldDescriptor::CPPTYPE_UINT64) {
        low = 0;
      }
      int64_t value = 0;
      bool out_of_range = false;
      const bool parsed = ParseIntegral(text, &value, &out_of_range);
      if (!parsed && !out_of_range) return "an integer";
      if (!parsed || value < low || value > high) {
        return absl::StrCat("an integer in [", low, ", ", high, "]");
      }
      switch (field.cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          reflection.SetInt32(message, &field, static_cast<int32_t>(value));
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          reflection.SetUInt32(message, &field, static_cast<uint32_t>(value));
          break;
        case FieldDescriptor::CPPTYPE_UINT64:
          reflection.SetUInt64(message, &field, static_cast<uint64_t>(value));
          break;
        default:
          reflection.SetInt64(message, &field, value);
      }
      return std::nullopt;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double value = 0;
      if (!absl::SimpleAtod(text, &value) || !std::isfinite(value)) return "a finite number";
      if (field.cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
        reflection.SetFloat(message, &field, static_cast<float>(value));
      } else {
        reflection.SetDouble(message, &field, value);
      }
      return std::nullopt;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      if (text != "true" && text != "false") return "true or false";
      reflection.SetBool(message, &field, text == "true");
      return std::nullopt;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumDescriptor& type = *field.enum_type();
      const auto* value = type.FindValueByName(std::string(text));
      if (value == nullptr) {
        std::vector<std::string> names;
        for (int value_idx = 0; value_idx < type.value_count(); ++value_idx) {
          names.push_back(type.value(value_idx)->name());
        }
        return absl::StrCat("one of ", absl::StrJoin(names, ", "));
      }
      reflection.SetEnum(message, &field, value);
      return std::nullopt;
    }
    case FieldDescriptor::CPPTYPE_STRING:
      reflection.SetString(message, &field, std::string(text));
      return std::nullopt;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return "a single value";
}

// Sets the map entry `target.map_key` of `target.field`. Map fields are reached through their
// repeated-entry view: reflection has no keyed access, so the new entry is appended and then
// swapped over any entry with the same key.
std::optional<std::string> SetMapEntryFromText(absl::string_view text, const KeyTarget& target) {
  Message* holder = target.holder;
  const Reflection& reflection = *holder->GetReflection();
  const FieldDescriptor& key_field = *target.field->message_type()->map_key();
  const FieldDescriptor& value_field = *target.field->message_type()->map_value();

  Message* entry = reflection.AddMessage(holder, target.field);
  entry->GetReflection()->SetString(entry, &key_field, target.map_key);
  if (std::optional<std::string> expected = SetScalarFromText(text, value_field, entry)) {
    reflection.RemoveLast(holder, target.field);
    return expected;
  }
  const int last = reflection.FieldSize(*holder, target.field) - 1;
  for (int entry_idx = 0; entry_idx < last; ++entry_idx) {
    const Message& existing = reflection.GetRepeatedMessage(*holder, target.field, entry_idx);
    if (existing.GetReflection()->GetString(existing, &key_field) == target.map_key) {
      reflection.SwapElements(holder, target.field, entry_idx, last);
      reflection.RemoveLast(holder, target.field);
      break;
    }
  }
  return std::nullopt;
}

// Collects rule violations for CheckRunConfig.
class RuleChecker {
 public:
  // Records a violation of the rule about `path` unless `ok`. `also` lists the other keys the
  // rule read.
  void Require(bool ok, std::string path, std::string expected, std::string found,
               std::vector<std::string> also = {}) {
    if (ok) return;
    std::vector<std::string> involves = {path};
    involves.insert(involves.end(), also.begin(), also.end());
    errors_.push_back(
        {std::move(path), std::move(expected), std::move(found), std::move(involves)});
  }
  void RequirePositive(int64_t value, std::string path) {
    Require(value > 0, std::move(path), "a positive integer", absl::StrCat(value));
  }
  void RequireNonNegative(int64_t value, std::string path) {
    Require(value >= 0, std::move(path), "an integer >= 0", absl::StrCat(value));
  }
  void RequirePositive(double value, std::string path, std::string what) {
    Require(std::isfinite(value) && value > 0, std::move(path), std::move(what),
            absl::StrCat(value));
  }
  std::vector<FieldError> Take() { return std::move(errors_); }

 private:
  std::vector<FieldError> errors_;
};

template <typename Map>
std::vector<std::string> SortedKeys(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : map) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

void CheckModel(const scalelab::v1::ModelSpec& model, RuleChecker* checker) {
  checker->Require(model.family() == "transformer", "model.family", "\"transformer\"",
                   Quoted(model.family()));
  checker->RequirePositive(model.d_model(), "model.d_model");
  checker->RequirePositive(model.n_layers(), "model.n_layers");
  checker->RequirePositive(model.n_heads(), "model.n_heads");
  checker->RequirePositive(model.seq_len(), "model.seq_len");
  if (model.d_model() > 0 && model.n_heads() > 0) {
    checker->Require(model.d_model() % model.n_heads() == 0, "model.d_model",
                     absl::StrCat("a multiple of model.n_heads (", model.n_heads(), ")"),
                     absl::StrCat(model.d_model()), {"model.n_heads"});
  }
  checker->Require(model.d_ff() >= 0, "model.d_ff", "an integer >= 0 (0 means 4 * d_model)",
                   absl::StrCat(model.d_ff()));
  checker->Require(model.vocab_size() >= 2 && model.vocab_size() <= 65536, "model.vocab_size",
                   "an integer in [2, 65536]", absl::StrCat(model.vocab_size()));
}

void CheckData(const scalelab::v1::DataSpec& data, RuleChecker* checker) {
  const std::vector<std::string> sources = SortedKeys(data.sources());
  checker->Require(!sources.empty(), "data.sources", "at least one source", "none");
  for (const std::string& name : sources) {
    checker->Require(!data.sources().at(name).empty(), JoinKey("data.sources", name),
                     "a non-empty folder", "\"\"");
  }
  // Protobuf maps iterate in no fixed order; sorting keeps the first error stable.
  double weight_sum = 0;
  bool weights_ok = true;
  for (const std::string& name : SortedKeys(data.mixture())) {
    const std::string path = JoinKey("data.mixture", name);
    checker->Require(data.sources().find(name) != data.sources().end(), path,
                     absl::StrCat("the name of a source (", absl::StrJoin(sources, ", "), ")"),
                     Quoted(name), {"data.sources"});
    const double weight = data.mixture().at(name);
    const bool weight_ok = std::isfinite(weight) && weight >= 0;
    checker->Require(weight_ok, path, "a finite weight >= 0", absl::StrCat(weight));
    weights_ok = weights_ok && weight_ok;
    weight_sum += weight;
  }
  if (!data.mixture().empty() && weights_ok) {
    checker->Require(weight_sum > 0, "data.mixture", "weights with a positive sum",
                     absl::StrCat(weight_sum));
  }
}

void CheckTrain(const scalelab::v1::TrainSpec& train, const scalelab::v1::ModelSpec& model,
                RuleChecker* checker) {
  checker->RequirePositive(train.tokens(), "train.tokens", "a positive number of tokens");
  checker->RequirePositive(train.batch_tokens(), "train.batch_tokens");
  if (train.batch_tokens() > 0 && model.seq_len() > 0) {
    checker->Require(train.batch_tokens() % model.seq_len() == 0, "train.batch_tokens",
                     absl::StrCat("a multiple of model.seq_len (", model.seq_len(), ")"),
                     absl::StrCat(train.batch_tokens()), {"model.seq_len"});
  }
  checker->RequirePositive(train.lr(), "train.lr", "a positive finite learning rate");
  checker->Require(train.schedule() == "cosine" || train.schedule() == "constant", "train.schedule",
                   "\"cosine\" or \"constant\"", Quoted(train.schedule()));
  checker->Require(std::isfinite(train.warmup()) && train.warmup() >= 0 && train.warmup() < 1,
                   "train.warmup", "a fraction of the steps in [0, 1)",
                   absl::StrCat(train.warmup()));
  checker->Require(std::isfinite(train.weight_decay()) && train.weight_decay() >= 0,
                   "train.weight_decay", "a finite number >= 0",
                   absl::StrCat(train.weight_decay()));
}

void CheckEvalAndResources(const RunConfig& config, RuleChecker* checker) {
  checker->RequirePositive(config.eval().every_tokens(), "eval.every_tokens",
                           "a positive number of tokens");
  checker->RequirePositive(config.eval().val_tokens(), "eval.val_tokens",
                           "a positive number of tokens");
  checker->RequireNonNegative(config.resources().gpus(), "resources.gpus");
  checker->RequireNonNegative(config.resources().cpus(), "resources.cpus");
}

std::string DescribeOverrides(const std::vector<std::pair<std::string, std::string>>& overrides) {
  if (overrides.empty()) return "base, no overrides";
  return absl::StrJoin(overrides, ", ", absl::PairFormatter("="));
}

}  // namespace

std::string FieldError::Message(std::string_view prefix) const {
  std::string where = JoinKey(Absl(prefix), path);
  if (where.empty()) where = "RunConfig";
  return absl::StrCat(where, ": expected ", expected, ", got ", found);
}

bool KeysOverlap(std::string_view a, std::string_view b) {
  if (a.size() < b.size()) std::swap(a, b);
  return a.substr(0, b.size()) == b && (a.size() == b.size() || a[b.size()] == '.');
}

std::optional<FieldError> ResolveRunConfigKey(std::string_view dotted_key, KeyShape* shape) {
  KeyTarget target;
  if (std::optional<FieldError> error = WalkKey(Absl(dotted_key), nullptr, &target)) return error;
  *shape = target.shape;
  return std::nullopt;
}

std::optional<FieldError> SetRunConfigValue(std::string_view dotted_key, std::string_view value,
                                            RunConfig* config) {
  KeyTarget target;
  if (std::optional<FieldError> error = WalkKey(Absl(dotted_key), config, &target)) return error;
  if (target.shape != KeyShape::kValue) {
    const std::string what = target.shape == KeyShape::kMap ? "map" : "group of fields";
    return FieldError{
        std::string(dotted_key),
        absl::StrCat("a key naming one value inside this ", what, " (",
                     target.shape == KeyShape::kMap ? absl::StrCat(Absl(dotted_key), ".<name>")
                                                    : KeysOf(*target.field->message_type()),
                     ")"),
        Quoted(Absl(value)),
        {}};
  }
  std::optional<std::string> expected =
      target.map_key.empty() ? SetScalarFromText(Absl(value), *target.field, target.holder)
                             : SetMapEntryFromText(Absl(value), target);
  if (!expected) return std::nullopt;
  return FieldError{std::string(dotted_key),
                    *std::move(expected),
                    Quoted(Absl(value)),
                    {std::string(dotted_key)}};
}

absl::Status ApplyOverride(std::string_view dotted_key, std::string_view value, RunConfig* config) {
  if (std::optional<FieldError> error = SetRunConfigValue(dotted_key, value, config)) {
    return absl::InvalidArgumentError(error->Message());
  }
  return absl::OkStatus();
}

void ApplyRunDefaults(RunConfig* config) {
  scalelab::v1::ModelSpec& model = *config->mutable_model();
  if (model.family().empty()) model.set_family("transformer");
  if (model.vocab_size() == 0) model.set_vocab_size(256);

  scalelab::v1::TrainSpec& train = *config->mutable_train();
  if (train.schedule().empty()) train.set_schedule("cosine");
  if (train.weight_decay() == 0) train.set_weight_decay(0.1);

  scalelab::v1::ResourceSpec& resources = *config->mutable_resources();
  if (resources.gpus() == 0 && resources.cpus() == 0) resources.set_cpus(1);

  scalelab::v1::DataSpec& data = *config->mutable_data();
  if (data.mixture().empty()) {
    for (const auto& [name, folder] : data.sources()) (*data.mutable_mixture())[name] = 1.0;
  }

  scalelab::v1::EvalSpec& eval = *config->mutable_eval();
  if (eval.val_tokens() == 0) eval.set_val_tokens(65536);
  if (eval.every_tokens() == 0) eval.set_every_tokens(train.tokens() / 10);
}

std::vector<FieldError> CheckRunConfig(const RunConfig& config) {
  RuleChecker checker;
  CheckModel(config.model(), &checker);
  CheckData(config.data(), &checker);
  CheckTrain(config.train(), config.model(), &checker);
  CheckEvalAndResources(config, &checker);
  return checker.Take();
}

absl::Status ValidateRunConfig(const RunConfig& config) {
  std::vector<FieldError> errors = CheckRunConfig(config);
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(errors.front().Message());
}

absl::StatusOr<std::vector<ExpandedRun>> ExpandSweep(const SweepSpec& spec) {
  std::vector<const scalelab::v1::Axis*> axes;
  std::set<std::string> axis_keys;
  uint64_t total_runs = 1;
  bool overflow = false;
  std::vector<std::string> axis_sizes;
  for (const scalelab::v1::Axis& axis : spec.sweep().grid().axes()) {
    const std::string where = absl::StrCat("sweep.grid.", Quoted(axis.key()));
    if (axis.key().empty()) {
      return absl::InvalidArgumentError("sweep.grid: expected a key for every axis, got \"\"");
    }
    if (!axis_keys.insert(axis.key()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("sweep.grid: expected each key once, got ", Quoted(axis.key()), " twice"));
    }
    if (axis.values().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected at least one value, got none"));
    }
    overflow = overflow || __builtin_mul_overflow(
                               total_runs, static_cast<uint64_t>(axis.values_size()), &total_runs);
    axis_sizes.push_back(absl::StrCat(axis.values_size()));
    axes.push_back(&axis);
  }
  if (overflow || total_runs > static_cast<uint64_t>(kMaxRunsPerSweep)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sweep.grid: expected at most ", kMaxRunsPerSweep, " runs, got ",
                     overflow ? "more than 2^64" : absl::StrCat(total_runs), " (",
                     absl::StrJoin(axis_sizes, " x "), ")"));
  }

  std::vector<ExpandedRun> runs;
  runs.reserve(total_runs);
  // A mixed-radix counter over the axes; the last axis is the fastest digit.
  std::vector<int> value_idx(axes.size(), 0);
  for (int run_idx = 0; run_idx < static_cast<int>(total_runs); ++run_idx) {
    ExpandedRun run;
    run.index = run_idx;
    run.config = spec.base();
    std::vector<std::pair<std::string, std::string>> applied;
    for (size_t axis_idx = 0; axis_idx < axes.size(); ++axis_idx) {
      const std::string& key = axes[axis_idx]->key();
      const std::string& value = axes[axis_idx]->values(value_idx[axis_idx]);
      if (std::optional<FieldError> error = SetRunConfigValue(key, value, &run.config)) {
        return absl::InvalidArgumentError(
            absl::StrCat("sweep.grid.", Quoted(key), ": ", error->Message()));
      }
      applied.emplace_back(key, value);
      run.overrides[key] = value;
    }
    ApplyRunDefaults(&run.config);
    if (absl::Status status = ValidateRunConfig(run.config); !status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("run ", run_idx, " (", DescribeOverrides(applied), "): ", status.message()));
    }
    runs.push_back(std::move(run));
    for (int axis_idx = static_cast<int>(axes.size()) - 1; axis_idx >= 0; --axis_idx) {
      if (++value_idx[axis_idx] < axes[axis_idx]->values_size()) break;
      value_idx[axis_idx] = 0;
    }
  }
  return runs;
}

}  // namespace scalelab::scheduler
