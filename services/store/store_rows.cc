#include "services/store/internal/store_rows.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/run_state.h"

namespace scalelab::services::internal {
namespace {

google::protobuf::Timestamp TimestampFromEpoch(double epoch_s) {
  google::protobuf::Timestamp ts;
  double whole = std::floor(epoch_s);
  ts.set_seconds(static_cast<int64_t>(whole));
  ts.set_nanos(static_cast<int32_t>((epoch_s - whole) * 1e9));
  return ts;
}

template <typename T, typename Parse>
absl::StatusOr<std::vector<T>> ArrayFromField(const pqxx::field& field, absl::string_view what,
                                              Parse parse) {
  std::vector<T> values;
  if (field.is_null()) return values;
  pqxx::array_parser parser = field.as_array();
  int depth = 0;
  for (auto [juncture, text] = parser.get_next(); juncture != pqxx::array_parser::done;
       std::tie(juncture, text) = parser.get_next()) {
    switch (juncture) {
      case pqxx::array_parser::row_start:
        if (++depth > 1) {
          return absl::InternalError(absl::StrCat(what, ": expected a one-dimensional array"));
        }
        break;
      case pqxx::array_parser::row_end:
        --depth;
        break;
      case pqxx::array_parser::null_value:
        return absl::InternalError(absl::StrCat(what, ": unexpected NULL element"));
      case pqxx::array_parser::string_value: {
        T value;
        if (!parse(text, &value)) {
          return absl::InternalError(
              absl::StrCat(what, ": bad element \"", text.substr(0, 40), "\""));
        }
        values.push_back(std::move(value));
        break;
      }
      case pqxx::array_parser::done:
        break;
    }
  }
  return values;
}

}  // namespace

void AppendFloat8Text(std::string* out, double value) {
  if (std::isnan(value)) {
    out->append("NaN");
  } else if (std::isinf(value)) {
    out->append(value > 0 ? "Infinity" : "-Infinity");
  } else {
    char buffer[32];
    auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out->append(buffer, end);  // 32 bytes always hold the shortest form of a double
  }
}

std::string Float8Text(double value) {
  std::string out;
  AppendFloat8Text(&out, value);
  return out;
}

void AppendArrayTextElement(std::string* out, absl::string_view value) {
  out->push_back('"');
  for (char c : value) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

std::string Float8ArrayLiteral(const std::vector<double>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendFloat8Text(&out, values[i]);
  }
  out.push_back('}');
  return out;
}

std::string Int64ArrayLiteral(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", values[i]);
  out.push_back('}');
  return out;
}

std::string TextArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendArrayTextElement(&out, values[i]);
  }
  out.push_back('}');
  return out;
}

bool ParseFloat8(absl::string_view text, double* value) {
  // PostgreSQL's spellings first; from_chars does the digits without locale or allocation.
  if (text == "NaN") {
    *value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  if (text == "Infinity" || text == "-Infinity") {
    *value = text[0] == '-' ? -std::numeric_limits<double>::infinity()
                            : std::numeric_limits<double>::infinity();
    return true;
  }
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *value);
  return error == std::errc() && end == text.data() + text.size();
}

absl::StatusOr<double> Float8FromField(const pqxx::field& field, absl::string_view what) {
  double value = 0;
  if (field.is_null() || !ParseFloat8(field.c_str(), &value)) {
    return absl::InternalError(absl::StrCat(what, ": expected a number, got \"",
                                            absl::string_view(field.c_str()).substr(0, 40), "\""));
  }
  return value;
}

absl::StatusOr<std::vector<double>> Float8ArrayFromField(const pqxx::field& field,
                                                         absl::string_view what) {
  return ArrayFromField<double>(
      field, what, [](const std::string& text, double* value) { return ParseFloat8(text, value); });
}

absl::StatusOr<std::vector<int64_t>> Int64ArrayFromField(const pqxx::field& field,
                                                         absl::string_view what) {
  return ArrayFromField<int64_t>(field, what, [](const std::string& text, int64_t* value) {
    return absl::SimpleAtoi(text, value);
  });
}

absl::StatusOr<std::vector<std::string>> TextArrayFromField(const pqxx::field& field,
                                                            absl::string_view what) {
  return ArrayFromField<std::string>(field, what, [](const std::string& text, std::string* value) {
    *value = text;
    return true;
  });
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  // Serializing a well-formed message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

absl::Status FromJson(const std::string& json, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // rows written by a newer schema stay readable
  auto status = google::protobuf::util::JsonStringToMessage(json, message, options);
  if (!status.ok()) {
    return absl::InternalError(
        absl::StrCat("stored ", message->GetTypeName(), " is not valid JSON: ", status.ToString()));
  }
  return absl::OkStatus();
}

std::string JsonString(absl::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

namespace {

void AppendDouble(std::string* out, double value) {
  if (std::isnan(value)) {
    *out += "\"NaN\"";
  } else if (std::isinf(value)) {
    *out += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out->append(buffer, end);
  }
}

void AppendFloat(std::string* out, float value) {
  if (std::isnan(value) || std::isinf(value)) {
    AppendDouble(out, value);
  } else {
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    out->append(buffer, end);
  }
}

void AppendMessageJson(std::string* out, const google::protobuf::Message& message);

// One value of `field` (the element `index` of a repeated field, or -1).
void AppendFieldValue(std::string* out, const google::protobuf::Message& message,
                      const google::protobuf::FieldDescriptor* field, int index) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* r = message.GetReflection();
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(
          out, rep ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(
          out, rep ? r->GetRepeatedUInt32(message, field, index) : r->GetUInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(
          out, "\"", rep ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field),
          "\"");
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(
          out, "\"",
          rep ? r->GetRepeatedUInt64(message, field, index) : r->GetUInt64(message, field), "\"");
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      AppendDouble(
          out, rep ? r->GetRepeatedDouble(message, field, index) : r->GetDouble(message, field));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      AppendFloat(out,
                  rep ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      *out += (rep ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field))
                  ? "true"
                  : "false";
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number =
          rep ? r->GetRepeatedEnumValue(message, field, index) : r->GetEnumValue(message, field);
      const google::protobuf::EnumValueDescriptor* value =
          field->enum_type()->FindValueByNumber(number);
      if (value != nullptr) {
        *out += JsonString(value->name());
      } else {
        absl::StrAppend(out, number);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text = rep ? r->GetRepeatedStringReference(message, field, index, &scratch)
                                    : r->GetStringReference(message, field, &scratch);
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        absl::StrAppend(out, "\"", absl::Base64Escape(text), "\"");
      } else {
        *out += JsonString(text);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessageJson(
          out, rep ? r->GetRepeatedMessage(message, field, index) : r->GetMessage(message, field));
      break;
  }
}

void AppendMessageJson(std::string* out, const google::protobuf::Message& message) {
  const google::protobuf::Descriptor* descriptor = message.GetDescriptor();
  // Well-known types have their own JSON forms: protobuf's printer writes those.
  if (absl::StartsWith(descriptor->file()->name(), "google/protobuf/")) {
    *out += ToJson(message);
    return;
  }
  const google::protobuf::Reflection* r = message.GetReflection();
  std::vector<const google::protobuf::FieldDescriptor*> fields;
  r->ListFields(message, &fields);  // set fields only, as the printer's defaults
  *out += '{';
  bool first = true;
  for (const google::protobuf::FieldDescriptor* field : fields) {
    if (field->is_extension()) continue;
    if (!first) *out += ',';
    first = false;
    absl::StrAppend(out, JsonString(field->name()), ":");
    if (field->is_map()) {
      const google::protobuf::FieldDescriptor* key = field->message_type()->map_key();
      const google::protobuf::FieldDescriptor* value = field->message_type()->map_value();
      *out += '{';
      const int size = r->FieldSize(message, field);
      for (int i = 0; i < size; ++i) {
        const google::protobuf::Message& entry = r->GetRepeatedMessage(message, field, i);
        if (i > 0) *out += ',';
        std::string key_json;
        AppendFieldValue(&key_json, entry, key, -1);
        if (key_json.empty() || key_json[0] != '"') key_json = absl::StrCat("\"", key_json, "\"");
        absl::StrAppend(out, key_json, ":");
        AppendFieldValue(out, entry, value, -1);
      }
      *out += '}';
    } else if (field->is_repeated()) {
      *out += '[';
      const int size = r->FieldSize(message, field);
      for (int i = 0; i < size; ++i) {
        if (i > 0) *out += ',';
        AppendFieldValue(out, message, field, i);
      }
      *out += ']';
    } else {
      AppendFieldValue(out, message, field, -1);
    }
  }
  *out += '}';
}

}  // namespace

std::string FastToJson(const google::protobuf::Message& message) {
  std::string out;
  AppendMessageJson(&out, message);
  return out;
}

std::string OverridesToJson(const std::map<std::string, std::string>& overrides) {
  // Written directly: protobuf's JSON printer (through a Struct) cost ~40 us per run of a sweep.
  std::string out = "{";
  for (const auto& [key, value] : overrides) {
    if (out.size() > 1) out += ',';
    absl::StrAppend(&out, JsonString(key), ":", JsonString(value));
  }
  out += '}';
  return out;
}

namespace {

// A float8 column: from_chars on the text, without the stream pqxx 6 builds per conversion
// (which cost more than the rest of a run's row).
double Float8(const pqxx::field& field) {
  double value = 0;
  return ParseFloat8(field.c_str(), &value) ? value : field.as<double>();
}

void AppendUtf8(uint32_t code_point, std::string* out) {
  if (code_point < 0x80) {
    out->push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

// A JSON string at json[*pos] (the opening quote), unescaped into *out; *pos ends past it.
bool ParseJsonString(absl::string_view json, size_t* pos, std::string* out) {
  if (*pos >= json.size() || json[*pos] != '"') return false;
  out->clear();
  auto hex4 = [&](size_t at, uint32_t* value) {
    if (at + 4 > json.size()) return false;
    *value = 0;
    for (size_t i = at; i < at + 4; ++i) {
      const char c = json[i];
      const int digit = c >= '0' && c <= '9'   ? c - '0'
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                               : -1;
      if (digit < 0) return false;
      *value = *value * 16 + static_cast<uint32_t>(digit);
    }
    return true;
  };
  for (size_t i = *pos + 1; i < json.size(); ++i) {
    const char c = json[i];
    if (c == '"') {
      *pos = i + 1;
      return true;
    }
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (++i >= json.size()) return false;
    switch (json[i]) {
      case '"':
        out->push_back('"');
        break;
      case '\\':
        out->push_back('\\');
        break;
      case '/':
        out->push_back('/');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        uint32_t code_point = 0;
        if (!hex4(i + 1, &code_point)) return false;
        i += 4;
        if (code_point >= 0xD800 && code_point < 0xDC00) {  // a surrogate pair
          uint32_t low = 0;
          if (i + 2 >= json.size() || json[i + 1] != '\\' || json[i + 2] != 'u' ||
              !hex4(i + 3, &low) || low < 0xDC00 || low > 0xDFFF) {
            return false;
          }
          i += 6;
          code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
        }
        AppendUtf8(code_point, out);
        break;
      }
      default:
        return false;
    }
  }
  return false;
}

// The overrides as PostgreSQL prints a JSON object of strings ({"a": "1", "b.c": "x"}).
// False for anything else; the caller then takes the general (slow) proto JSON parser.
bool ParseStringMap(absl::string_view json, google::protobuf::Map<std::string, std::string>* out) {
  size_t pos = 0;
  auto skip_space = [&] {
    while (pos < json.size() &&
           (json[pos] == ' ' || json[pos] == '\n' || json[pos] == '\t' || json[pos] == '\r')) {
      ++pos;
    }
  };
  skip_space();
  if (pos >= json.size() || json[pos++] != '{') return false;
  skip_space();
  if (pos < json.size() && json[pos] == '}')
    return json.substr(pos + 1).find_first_not_of(" \n") == absl::string_view::npos;
  std::string key, value;
  while (true) {
    skip_space();
    if (!ParseJsonString(json, &pos, &key)) return false;
    skip_space();
    if (pos >= json.size() || json[pos++] != ':') return false;
    skip_space();
    if (!ParseJsonString(json, &pos, &value)) return false;
    (*out)[key] = value;
    skip_space();
    if (pos >= json.size()) return false;
    if (json[pos] == '}') break;
    if (json[pos++] != ',') return false;
  }
  return json.substr(pos + 1).find_first_not_of(" \n") == absl::string_view::npos;
}

}  // namespace

absl::Status CheckLeaseToken(int64_t run_id, int64_t given, int64_t current) {
  if (given == 0 || given == current) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("lease token ", given,
                                                    " is not the current lease of run ", run_id,
                                                    " (current ", current, ")"));
}

absl::StatusOr<v1::Run> RunFromRow(const pqxx::row& row) {
  v1::Run run;
  run.set_id(row[0].as<int64_t>());
  run.set_sweep_id(row[1].as<int64_t>());
  run.set_index(row[2].as<int32_t>());
  auto state = ParseRunState(row[3].as<std::string>());
  if (!state.ok()) return state.status();
  run.set_state(*state);
  if (!row[4].is_null()) {
    const pqxx::binarystring config(row[4]);
    if (!run.mutable_config()->ParseFromArray(config.data(), static_cast<int>(config.size()))) {
      return absl::InternalError(
          absl::StrCat("run ", run.id(), ": stored config_pb is not a RunConfig"));
    }
  } else if (auto status = FromJson(row[5].as<std::string>(), run.mutable_config()); !status.ok()) {
    return status;
  }
  const absl::string_view overrides_json(row[6].c_str(), row[6].size());
  if (!ParseStringMap(overrides_json, run.mutable_overrides())) {
    run.mutable_overrides()->clear();
    google::protobuf::Struct overrides;
    if (auto status = FromJson(std::string(overrides_json), &overrides); !status.ok()) {
      return status;
    }
    for (const auto& [key, value] : overrides.fields()) {
      (*run.mutable_overrides())[key] = value.string_value();
    }
  }
  run.set_attempt(row[7].as<int32_t>());
  run.set_max_attempts(row[8].as<int32_t>());
  run.set_worker_id(row[9].as<int64_t>());
  run.set_step(row[10].as<int64_t>());
  run.set_tokens(Float8(row[11]));
  run.set_train_loss(Float8(row[12]));
  run.set_val_loss(Float8(row[13]));
  run.set_exit_code(row[14].as<int32_t>());
  run.set_failure_class(ParseFailureClass(row[15].as<std::string>()));
  run.set_message(row[16].as<std::string>());
  *run.mutable_created_at() = TimestampFromEpoch(Float8(row[17]));
  *run.mutable_updated_at() = TimestampFromEpoch(Float8(row[18]));
  v1::RunRecord record;
  record.set_n_params(row[19].as<int64_t>());
  record.set_n_params_total(row[20].as<int64_t>());
  record.set_flops_per_token(Float8(row[21]));
  record.set_tokens(Float8(row[22]));
  record.set_flops(Float8(row[23]));
  record.set_family(row[24].as<std::string>());
  // Present only once reported, so "never reported" and "reported zeros" read the same as in
  // the proto contract (unset fields are 0) without an empty message on every run.
  if (record.ByteSizeLong() > 0) *run.mutable_record() = std::move(record);
  v1::EnergyReport energy;
  energy.set_energy_j(Float8(row[25]));
  energy.set_source(row[26].as<std::string>());
  energy.set_device_seconds(Float8(row[27]));
  energy.set_device_kind(row[28].as<std::string>());
  energy.set_devices(row[29].as<int32_t>());
  energy.set_wall_s(Float8(row[30]));
  if (energy.ByteSizeLong() > 0) *run.mutable_energy() = std::move(energy);
  auto kind = ParseRunKind(row[31].as<std::string>());
  if (!kind.ok()) return kind.status();
  run.set_kind(*kind);
  run.set_stage(row[32].as<std::string>());
  run.set_parent_run_id(row[33].as<int64_t>());
  return run;
}

absl::StatusOr<v1::Sweep> SweepFromRow(const pqxx::row& row) {
  v1::Sweep sweep;
  sweep.set_id(row[0].as<int64_t>());
  sweep.set_name(row[1].as<std::string>());
  sweep.set_project(row[2].as<std::string>());
  auto kind = ParseRunKind(row[3].as<std::string>());
  if (!kind.ok()) return kind.status();
  sweep.set_kind(*kind);
  auto state = ParseSweepState(row[4].as<std::string>());
  if (!state.ok()) return state.status();
  sweep.set_state(*state);
  if (auto status = FromJson(row[5].as<std::string>(), sweep.mutable_spec()); !status.ok()) {
    return status;
  }
  sweep.set_idempotency_key(row[6].as<std::string>());
  *sweep.mutable_created_at() = TimestampFromEpoch(row[7].as<double>());
  *sweep.mutable_updated_at() = TimestampFromEpoch(row[8].as<double>());
  return sweep;
}

void AddRunCounts(pqxx::work& txn, v1::Sweep* sweep) {
  pqxx::result counts = txn.exec_params(
      "SELECT state, count(*) FROM runs WHERE sweep_id = $1 GROUP BY state", sweep->id());
  int32_t total = 0;
  for (const auto& row : counts) {
    int32_t n = row[1].as<int32_t>();
    (*sweep->mutable_runs_by_state())[row[0].as<std::string>()] = n;
    total += n;
  }
  sweep->set_total_runs(total);
}

void RecordTransition(pqxx::work& txn, int64_t run_id, int32_t attempt, v1::RunState from,
                      v1::RunState to, const std::string& reason) {
  txn.exec_params("UPDATE runs SET state = $2, updated_at = now() WHERE id = $1", run_id,
                  RunStateName(to));
  txn.exec_params(
      "INSERT INTO run_transitions (run_id, attempt, from_state, to_state, reason) "
      "VALUES ($1, $2, $3, $4, $5)",
      run_id, attempt, RunStateName(from), RunStateName(to), reason);
}

void RefreshSweepState(pqxx::work& txn, int64_t sweep_id) {
  // Probes of runs_state_idx (state, sweep_id, ...), not a count of the sweep's runs: this runs
  // with every completion, and counting a 100,000-run sweep under its row lock serialized them.
  static const std::string* const kQuery = [] {
    std::vector<std::string> not_terminal;
    for (int value = v1::RunState_MIN; value <= v1::RunState_MAX; ++value) {
      const auto state = static_cast<v1::RunState>(value);
      if (!v1::RunState_IsValid(value) || state == v1::RUN_STATE_UNSPECIFIED || IsTerminal(state)) {
        continue;
      }
      not_terminal.push_back(absl::StrCat("'", RunStateName(state), "'"));
    }
    return new std::string(absl::StrCat(
        "SELECT s.state, EXISTS (SELECT 1 FROM runs r WHERE r.sweep_id = s.id AND r.state IN (",
        absl::StrJoin(not_terminal, ", "),
        ")), "
        "  EXISTS (SELECT 1 FROM runs r WHERE r.sweep_id = s.id AND r.state = 'FAILED'), "
        "  EXISTS (SELECT 1 FROM runs r WHERE r.sweep_id = s.id AND r.state = 'CANCELLED'), "
        "  s.search_open "
        "FROM sweeps s WHERE s.id = $1"));
  }();
  pqxx::row row = txn.exec_params1(*kQuery, sweep_id);
  std::string current = row[0].as<std::string>();
  if (current == "CANCELLED") return;
  std::string next;
  if (row[1].as<bool>() || row[4].as<bool>()) {
    next = "RUNNING";
  } else if (row[2].as<bool>()) {
    next = "FAILED";
  } else if (row[3].as<bool>()) {
    next = "CANCELLED";
  } else {
    next = "SUCCEEDED";
  }
  if (next != current) {
    txn.exec_params("UPDATE sweeps SET state = $2, updated_at = now() WHERE id = $1", sweep_id,
                    next);
  }
}

}  // namespace scalelab::services::internal
