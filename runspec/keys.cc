#include "runspec/keys.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "runspec/text.h"

namespace scalelab::runspec {
namespace {

using ::google::protobuf::Descriptor;
using ::google::protobuf::EnumDescriptor;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::scalelab::v1::RunConfig;

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
      // A list of scalars is set whole, from comma-separated text ("128,256,512").
      if (is_last && field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
        *target = {KeyShape::kValue, holder, field, ""};
        return std::nullopt;
      }
      return FieldError{field_path,
                        "a key naming a single value or a list of numbers or names",
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

// Replaces the repeated scalar `field` of `message` by the comma-separated elements of `text`
// (empty text: an empty list). Each element is parsed as SetScalarFromText parses a single value;
// on failure the field is left unchanged and the expectation names the bad element.
std::optional<std::string> SetListFromText(absl::string_view text, const FieldDescriptor& field,
                                           Message* message) {
  const Reflection& reflection = *message->GetReflection();
  std::vector<std::string> elements;
  if (!absl::StripAsciiWhitespace(text).empty()) {
    for (absl::string_view element : absl::StrSplit(text, ',')) {
      elements.emplace_back(absl::StripAsciiWhitespace(element));
    }
  }
  std::vector<std::string> checked;
  for (const std::string& element : elements) {
    switch (field.cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t value = 0;
        bool out_of_range = false;
        const bool is_int32 = field.cpp_type() == FieldDescriptor::CPPTYPE_INT32;
        if (!ParseIntegral(element, &value, &out_of_range) ||
            (is_int32 && (value < std::numeric_limits<int32_t>::min() ||
                          value > std::numeric_limits<int32_t>::max()))) {
          return absl::StrCat("a comma-separated list of integers (", Quoted(element),
                              " is not one)");
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double value = 0;
        if (!absl::SimpleAtod(element, &value) || !std::isfinite(value)) {
          return absl::StrCat("a comma-separated list of finite numbers (", Quoted(element),
                              " is not one)");
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        break;
      default:
        return "a single value";
    }
    checked.push_back(element);
  }
  reflection.ClearField(message, &field);
  for (const std::string& element : checked) {
    int64_t integral = 0;
    bool out_of_range = false;
    double number = 0;
    switch (field.cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        ParseIntegral(element, &integral, &out_of_range);
        reflection.AddInt32(message, &field, static_cast<int32_t>(integral));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        ParseIntegral(element, &integral, &out_of_range);
        reflection.AddInt64(message, &field, integral);
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        absl::SimpleAtod(element, &number);
        reflection.AddDouble(message, &field, number);
        break;
      default:
        reflection.AddString(message, &field, element);
    }
  }
  return std::nullopt;
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

}  // namespace

std::string KeysOf(const Descriptor& descriptor) {
  std::vector<std::string> names;
  for (int field_idx = 0; field_idx < descriptor.field_count(); ++field_idx) {
    names.push_back(descriptor.field(field_idx)->name());
  }
  return absl::StrCat("one of the keys ", absl::StrJoin(names, ", "));
}

std::string FieldError::Message(std::string_view prefix) const {
  // A key may hold a user's map key (a source name) of any length: capped like every echo.
  std::string where = Capped(JoinKey(Absl(prefix), path));
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
      !target.map_key.empty()       ? SetMapEntryFromText(Absl(value), target)
      : target.field->is_repeated() ? SetListFromText(Absl(value), *target.field, target.holder)
                                    : SetScalarFromText(Absl(value), *target.field, target.holder);
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

}  // namespace scalelab::runspec
