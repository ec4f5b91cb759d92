#include "runspec/spec_file.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "runspec/run_config.h"
#include "runspec/text.h"

namespace scalelab::runspec {
namespace {

// Appends `text` as a JSON string literal.
void AppendJsonString(const std::string& text, std::string* out) {
  out->push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          absl::StrAppend(out, "\\u00", absl::Hex(c, absl::kZeroPad2));
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// A plain (unquoted) YAML scalar that JSON can carry as a literal: a number, true or false.
bool IsJsonLiteral(const std::string& text) {
  if (text == "true" || text == "false") return true;
  double number = 0;
  return absl::SimpleAtod(text, &number) && absl::ascii_isdigit(text.back()) &&
         text.find_first_of("xX") == std::string::npos;
}

// YAML -> JSON text, so that protobuf's JSON parser does the typing (and the error messages for
// values of the wrong type) for both formats.
absl::Status YamlToJson(const YAML::Node& node, std::string_view source_name, std::string* out) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      out->append("null");
      return absl::OkStatus();
    case YAML::NodeType::Scalar:
      // yaml-cpp tags a quoted scalar "!": it stays a string even when it reads as a number.
      if (node.Tag() != "!" && IsJsonLiteral(node.Scalar())) {
        out->append(node.Scalar());
      } else {
        AppendJsonString(node.Scalar(), out);
      }
      return absl::OkStatus();
    case YAML::NodeType::Sequence: {
      out->push_back('[');
      bool first = true;
      for (const YAML::Node& item : node) {
        if (!first) out->push_back(',');
        first = false;
        if (absl::Status status = YamlToJson(item, source_name, out); !status.ok()) return status;
      }
      out->push_back(']');
      return absl::OkStatus();
    }
    case YAML::NodeType::Map: {
      out->push_back('{');
      bool first = true;
      for (const auto& entry : node) {
        if (!entry.first.IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat(Absl(source_name), ":", entry.first.Mark().line + 1,
                           ": expected a plain key, got a list or a map"));
        }
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(entry.first.Scalar(), out);
        out->push_back(':');
        if (absl::Status status = YamlToJson(entry.second, source_name, out); !status.ok()) {
          return status;
        }
      }
      out->push_back('}');
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<scalelab::v1::RunSpec> ParseRunSpec(std::string_view text,
                                                   std::string_view source_name) {
  const absl::string_view body = absl::StripLeadingAsciiWhitespace(Absl(text));
  std::string json;
  if (!body.empty() && body.front() == '{') {
    json = std::string(body);
  } else {
    try {
      const YAML::Node root = YAML::Load(std::string(text));
      if (!root.IsMap()) {
        return absl::InvalidArgumentError(absl::StrCat(
            Absl(source_name), ": expected a map of RunSpec fields (kind, config, ...), got ",
            root.IsNull() ? "an empty document" : "something else"));
      }
      if (absl::Status status = YamlToJson(root, source_name, &json); !status.ok()) return status;
    } catch (const YAML::Exception& error) {
      return absl::InvalidArgumentError(absl::StrCat(Absl(source_name), ":", error.mark.line + 1,
                                                     ":", error.mark.column + 1,
                                                     ": YAML syntax error: ", error.msg));
    }
  }
  scalelab::v1::RunSpec spec;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &spec, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        Absl(source_name), ": ", std::string(status.message().data(), status.message().size())));
  }
  return spec;
}

absl::StatusOr<scalelab::v1::RunSpec> ReadRunSpecFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::NotFoundError(absl::StrCat("--spec=", path, ": cannot be read"));
  }
  std::ostringstream text;
  text << file.rdbuf();
  return ParseRunSpec(text.str(), path);
}

std::string RunSpecToJson(const scalelab::v1::RunSpec& spec) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(spec, &json, options);
  return json;
}

absl::Status WriteRunSpecFile(const std::string& path, const scalelab::v1::RunSpec& spec) {
  const std::string temp = absl::StrCat(path, ".tmp");
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    file << RunSpecToJson(spec);
    if (!file.flush()) {
      return absl::InternalError(absl::StrCat("cannot write the run spec ", temp));
    }
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

void ApplySpecDefaults(scalelab::v1::RunSpec* spec) {
  if (spec->kind() == scalelab::v1::RUN_KIND_UNSPECIFIED) {
    spec->set_kind(scalelab::v1::RUN_KIND_PRETRAIN);
  }
  ApplyRunDefaults(spec->mutable_config(), spec->kind());
  if (spec->attempt() == 0) spec->set_attempt(1);
  scalelab::v1::ExecutionSpec& execution = *spec->mutable_execution();
  if (execution.device().empty()) {
    execution.set_device(spec->config().resources().gpus() > 0 ? "cuda" : "cpu");
  }
  if (execution.threads() == 0) execution.set_threads(1);
}

void ResolveDataFolders(const std::string& root, scalelab::v1::RunSpec* spec) {
  std::string base = root.empty() ? "." : root;
  if (base[0] != '/') {
    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) != nullptr) {
      base = base == "." ? std::string(cwd) : absl::StrCat(cwd, "/", base);
    }
  }
  auto resolve = [&base](std::string* path) {
    if (!path->empty() && (*path)[0] != '/') *path = absl::StrCat(base, "/", *path);
  };
  scalelab::v1::RunConfig& config = *spec->mutable_config();
  for (auto& [name, folder] : *config.mutable_data()->mutable_sources()) resolve(&folder);
  // Task sets and suites are read from the same data root as token shards. Only sections that
  // are present are touched, so a spec without them stays without them.
  if (config.has_sft() && config.sft().has_tasks()) {
    resolve(config.mutable_sft()->mutable_tasks()->mutable_path());
  }
  if (config.has_grpo() && config.grpo().has_tasks()) {
    resolve(config.mutable_grpo()->mutable_tasks()->mutable_path());
  }
  if (config.has_eval() && config.eval().has_tasks()) {
    scalelab::v1::TaskEvalSpec& tasks = *config.mutable_eval()->mutable_tasks();
    if (tasks.has_tasks()) resolve(tasks.mutable_tasks()->mutable_path());
    resolve(tasks.mutable_suite());
  }
}

}  // namespace scalelab::runspec
