#include "services/cli/tasks_command.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "tasks/suite.h"

namespace scalelab::cli {
namespace {

// A JSON string literal (export.h has one too, in scalelab_cli, which links gRPC).
std::string Quoted(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
  return out;
}

}  // namespace

absl::Status RunTasksSample(const TasksSampleOptions& options, std::ostream& out) {
  absl::StatusOr<tasks::TaskFamily> family = tasks::ParseFamily(options.task);
  if (!family.ok())
    return absl::InvalidArgumentError(absl::StrCat("--", family.status().message()));
  absl::StatusOr<tasks::Split> split = tasks::ParseSplit(options.split);
  if (!split.ok()) return absl::InvalidArgumentError(absl::StrCat("--", split.status().message()));
  if (options.n < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--n: expected >= 1, got ", options.n));
  }
  if (options.first < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--first: expected >= 0, got ", options.first));
  }
  tasks::GeneratorOptions generator = options.generator;
  generator.family = *family;
  absl::StatusOr<std::vector<tasks::Problem>> problems =
      tasks::GenerateProblems(generator, *split, options.first, options.n);
  if (!problems.ok()) {
    // Bad knobs are named as the flags that set them ("--digits: ...").
    if (problems.status().code() != absl::StatusCode::kInvalidArgument) return problems.status();
    return absl::InvalidArgumentError(absl::StrCat("--", problems.status().message()));
  }
  for (const tasks::Problem& problem : *problems) {
    if (options.json) {
      out << "{\"id\": " << Quoted(problem.id) << ", \"family\": " << Quoted(problem.family)
          << ", \"split\": " << Quoted(tasks::SplitName(problem.split))
          << ", \"difficulty\": " << Quoted(problem.difficulty)
          << ", \"question\": " << Quoted(problem.question)
          << ", \"answer\": " << Quoted(problem.answer) << "}\n";
    } else {
      out << problem.id << "\t" << problem.question << "\t" << problem.answer << "\n";
    }
  }
  return absl::OkStatus();
}

absl::Status RunTasksSuite(const std::string& path, std::ostream& out) {
  absl::StatusOr<tasks::Suite> suite = tasks::LoadSuite(path);
  if (!suite.ok()) return suite.status();
  out << "suite " << suite->name << ": " << suite->num_items() << " items in "
      << suite->categories.size() << " categories\n";
  for (const tasks::SuiteCategory& category : suite->categories) {
    out << "  " << category.name << "\t" << category.items.size() << " items\t"
        << category.verifier.Describe();
    if (!category.items.empty()) {
      out << "\te.g. " << category.items.front().question << " -> "
          << category.items.front().answer;
    }
    out << "\n";
  }
  if (!suite->reference_wrong_rates.empty()) {
    out << "reference " << suite->reference_run << ":";
    for (const auto& [category, rate] : suite->reference_wrong_rates) {
      out << " " << category << "=" << rate;
    }
    out << "\n";
  }
  return absl::OkStatus();
}

}  // namespace scalelab::cli
