#include "tasks/jsonl_loader.h"

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "yaml-cpp/yaml.h"

namespace scalelab::tasks {
namespace {

// JSON is parsed with yaml-cpp: a JSON object on one line is a YAML flow mapping, and the
// double-quoted escapes are the same. The line must start with '{', so YAML block syntax
// ("question: x") is refused as not JSON.

std::string Capped(absl::string_view text) {
  if (text.size() <= 80) return std::string(text);
  return absl::StrCat(text.substr(0, 80), "... (", text.size() - 80, " more bytes)");
}

std::string NodeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "an object";
    case YAML::NodeType::Null:
      return "null";
    default:
      return "a value";
  }
}

std::string StemOf(absl::string_view path) {
  const size_t slash = path.find_last_of('/');
  absl::string_view name = slash == absl::string_view::npos ? path : path.substr(slash + 1);
  const size_t dot = name.find('.');
  return std::string(dot == absl::string_view::npos ? name : name.substr(0, dot));
}

}  // namespace

absl::StatusOr<std::vector<Problem>> ParseProblemsJsonl(absl::string_view text,
                                                        absl::string_view source,
                                                        const LoadOptions& options) {
  if (auto status = options.fractions.Validate(); !status.ok()) return status;
  const std::string stem = StemOf(source);
  std::vector<Problem> problems;
  // canonical question -> (split, line), to refuse a question placed in two splits.
  std::unordered_map<std::string, std::pair<Split, int>> seen;
  int line_number = 0;
  for (absl::string_view raw_line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    ++line_number;
    const absl::string_view line = absl::StripAsciiWhitespace(raw_line);
    if (line.empty()) continue;
    const std::string where = absl::StrCat(source, ":", line_number, ": ");
    if (line.front() != '{') {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected a JSON object ({...}), got \"", Capped(line), "\""));
    }
    YAML::Node object;
    try {
      object = YAML::Load(std::string(line));
    } catch (const YAML::Exception& error) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "not valid JSON at column ", error.mark.column + 1, ": ", error.msg));
    }
    if (!object.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected a JSON object, got ", NodeKind(object)));
    }
    auto scalar_field = [&](const char* name, bool required, std::string* out) -> absl::Status {
      const YAML::Node field = object[name];
      if (!field.IsDefined() || field.IsNull()) {
        if (required)
          return absl::InvalidArgumentError(absl::StrCat(where, "missing \"", name, "\""));
        return absl::OkStatus();
      }
      if (!field.IsScalar()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, "\"", name, "\": expected a string or a number, got ", NodeKind(field)));
      }
      *out = field.Scalar();
      if (required && absl::StripAsciiWhitespace(*out).empty()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "\"", name, "\" is empty"));
      }
      return absl::OkStatus();
    };
    Problem problem;
    std::string answer, split_text, family, category;
    for (auto status :
         {scalar_field("question", true, &problem.question), scalar_field("answer", true, &answer),
          scalar_field("split", false, &split_text), scalar_field("id", false, &problem.id),
          scalar_field("family", false, &family), scalar_field("category", false, &category)}) {
      if (!status.ok()) return status;
    }
    const size_t marker = answer.rfind("####");
    if (marker != std::string::npos) {
      problem.answer = std::string(absl::StripAsciiWhitespace(answer.substr(marker + 4)));
      problem.solution = std::string(absl::StripAsciiWhitespace(answer.substr(0, marker)));
      if (problem.answer.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "\"answer\": nothing after \"####\" (expected the final answer)"));
      }
    } else {
      problem.answer = std::string(absl::StripAsciiWhitespace(answer));
    }
    if (!split_text.empty()) {
      absl::StatusOr<Split> split = ParseSplit(split_text);
      if (!split.ok())
        return absl::InvalidArgumentError(absl::StrCat(where, split.status().message()));
      problem.split = *split;
    } else {
      problem.split = SplitOfQuestion(problem.question, options.fractions);
    }
    if (!family.empty()) {
      problem.family = family;
    } else if (!category.empty()) {
      problem.family = category;
    } else if (!options.family.empty()) {
      problem.family = options.family;
    } else {
      problem.family = marker != std::string::npos ? "gsm8k" : "user";
    }
    if (problem.id.empty()) problem.id = absl::StrCat(stem, "-", line_number);
    auto [it, inserted] =
        seen.try_emplace(CanonicalText(problem.question), problem.split, line_number);
    if (!inserted && it->second.first != problem.split) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "the question of line ", it->second.second, " again, in split ",
                       SplitName(problem.split), " (line ", it->second.second, " has ",
                       SplitName(it->second.first), "); a question belongs to one split"));
    }
    problems.push_back(std::move(problem));
  }
  if (problems.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": no problems (empty file)"));
  }
  return problems;
}

absl::StatusOr<std::vector<Problem>> LoadProblemsJsonl(const std::string& path,
                                                       const LoadOptions& options) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the problem set"));
  std::stringstream contents;
  contents << in.rdbuf();
  return ParseProblemsJsonl(contents.str(), path, options);
}

}  // namespace scalelab::tasks
