#include "model/task_set.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "tasks/jsonl_loader.h"

namespace scalelab::model {
namespace {

absl::Status Prefixed(const absl::Status& status, absl::string_view field) {
  return absl::Status(status.code(), absl::StrCat(field, ": ", status.message()));
}

// The verifier the spec names, filling what it leaves out from `family`'s default.
absl::StatusOr<tasks::Verifier> VerifierFor(const scalelab::v1::TaskSetSpec& spec,
                                            absl::string_view family) {
  tasks::VerifierSpec verifier;
  if (absl::StatusOr<tasks::VerifierSpec> fallback = tasks::DefaultVerifierFor(family);
      fallback.ok()) {
    verifier = *fallback;
  }
  if (!spec.extract().empty()) {
    absl::StatusOr<tasks::Extract> extract = tasks::ParseExtract(spec.extract());
    if (!extract.ok()) return Prefixed(extract.status(), "extract");
    verifier.extract = *extract;
  }
  if (!spec.compare().empty()) {
    absl::StatusOr<tasks::Compare> compare = tasks::ParseCompare(spec.compare());
    if (!compare.ok()) return Prefixed(compare.status(), "compare");
    verifier.compare = *compare;
  }
  verifier.pattern = spec.pattern();
  if (verifier.extract != tasks::Extract::kPattern) verifier.pattern.clear();
  absl::StatusOr<tasks::Verifier> compiled = tasks::Verifier::Create(verifier);
  if (!compiled.ok()) return Prefixed(compiled.status(), "verifier");
  return compiled;
}

}  // namespace

absl::StatusOr<TaskSet> TaskSet::Open(const scalelab::v1::TaskSetSpec& spec) {
  if (!spec.generator().empty()) {
    absl::StatusOr<tasks::TaskFamily> family = tasks::ParseFamily(spec.generator());
    if (!family.ok()) return Prefixed(family.status(), "generator");
    tasks::GeneratorOptions options;
    options.family = *family;
    if (spec.digits() > 0) options.digits = spec.digits();
    if (spec.modulus() > 0) options.modulus = spec.modulus();
    if (spec.operand_digits() > 0) options.operand_digits = spec.operand_digits();
    if (spec.length() > 0) options.length = spec.length();
    if (spec.max_value() > 0) options.max_value = spec.max_value();
    if (spec.steps() > 0) options.steps = spec.steps();
    if (spec.seed() > 0) options.seed = static_cast<uint64_t>(spec.seed());
    if (absl::Status status = options.Validate(); !status.ok()) return status;
    absl::StatusOr<tasks::Verifier> verifier = VerifierFor(spec, spec.generator());
    if (!verifier.ok()) return verifier.status();
    std::string name = spec.name().empty()
                           ? absl::StrCat(spec.generator(), "-", options.Difficulty())
                           : spec.name();
    TaskSet set(std::move(name), *std::move(verifier));
    set.generated_ = true;
    set.generator_ = options;
    return set;
  }
  if (spec.path().empty()) {
    return absl::InvalidArgumentError("tasks: expected a generator or a JSONL path, got neither");
  }
  absl::StatusOr<std::vector<tasks::Problem>> problems = tasks::LoadProblemsJsonl(spec.path());
  if (!problems.ok()) return problems.status();
  // A loaded set's default verifier follows its first problem's family ("gsm8k" or "user" when
  // the file names none).
  absl::StatusOr<tasks::Verifier> verifier = VerifierFor(spec, problems->front().family);
  if (!verifier.ok()) return verifier.status();
  std::string name =
      spec.name().empty() ? std::filesystem::path(spec.path()).stem().string() : spec.name();
  TaskSet set(std::move(name), *std::move(verifier));
  for (tasks::Problem& problem : *problems) {
    set.loaded_[static_cast<int>(problem.split)].push_back(std::move(problem));
  }
  return set;
}

absl::StatusOr<std::vector<tasks::Problem>> TaskSet::Problems(tasks::Split split, int64_t first,
                                                              int64_t count) const {
  if (first < 0 || count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("problems: expected first >= 0 and count >= 0, got ", first, " and ", count));
  }
  if (generated_) return tasks::GenerateProblems(generator_, split, first, count);
  const std::vector<tasks::Problem>& pool = loaded_[static_cast<int>(split)];
  if (pool.empty() && count > 0) {
    return absl::ResourceExhaustedError(
        absl::StrCat("task set ", name_, " has no ", tasks::SplitName(split), " problems"));
  }
  std::vector<tasks::Problem> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    out.push_back(pool[static_cast<size_t>((first + i) % static_cast<int64_t>(pool.size()))]);
  }
  return out;
}

std::vector<int64_t> EncodeBytes(absl::string_view text) {
  std::vector<int64_t> tokens;
  tokens.reserve(text.size());
  for (char c : text) tokens.push_back(static_cast<unsigned char>(c));
  return tokens;
}

std::string DecodeBytes(const std::vector<int64_t>& tokens) {
  std::string text;
  text.reserve(tokens.size());
  for (int64_t token : tokens) {
    if (token >= 0 && token < 256) text.push_back(static_cast<char>(token));
  }
  return text;
}

std::string PromptText(const tasks::Problem& problem) { return problem.question; }

std::string ResponseText(const tasks::Problem& problem, bool use_solution) {
  if (use_solution && !problem.solution.empty()) {
    return absl::StrCat(problem.solution, " #### ", problem.answer, std::string(1, kEndOfResponse));
  }
  return absl::StrCat(problem.answer, std::string(1, kEndOfResponse));
}

}  // namespace scalelab::model
