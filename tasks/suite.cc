#include "tasks/suite.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tasks/internal/expression.h"
#include "yaml-cpp/yaml.h"

namespace scalelab::tasks {
namespace {

std::string Capped(absl::string_view text) {
  if (text.size() <= 80) return std::string(text);
  return absl::StrCat(text.substr(0, 80), "... (", text.size() - 80, " more bytes)");
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return absl::StrCat("\"", Capped(node.Scalar()), "\"");
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// Errors carry "<source>:<line>: <path>: ".
class Context {
 public:
  explicit Context(absl::string_view source) : source_(source) {}
  absl::Status Error(const YAML::Node& node, absl::string_view path, absl::string_view what) const {
    const int line = node.Mark().line >= 0 ? node.Mark().line + 1 : 0;
    return absl::InvalidArgumentError(absl::StrCat(source_, ":", line, ": ", path, ": ", what));
  }
  absl::Status Expected(const YAML::Node& node, absl::string_view path,
                        absl::string_view expected) const {
    return Error(node, path, absl::StrCat("expected ", expected, ", got ", Describe(node)));
  }

 private:
  std::string source_;
};

absl::Status ParseVerifier(const Context& ctx, const YAML::Node& node, const std::string& path,
                           VerifierSpec* spec) {
  if (!node.IsMap()) return ctx.Expected(node, path, "a mapping {compare, extract, ...}");
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    const YAML::Node& value = entry.second;
    const std::string field = absl::StrCat(path, ".", key);
    if (!value.IsScalar()) return ctx.Expected(value, field, "a value");
    if (key == "compare") {
      absl::StatusOr<Compare> compare = ParseCompare(value.Scalar());
      if (!compare.ok()) return ctx.Error(value, field, compare.status().message());
      spec->compare = *compare;
    } else if (key == "extract") {
      absl::StatusOr<Extract> extract = ParseExtract(value.Scalar());
      if (!extract.ok()) return ctx.Error(value, field, extract.status().message());
      spec->extract = *extract;
    } else if (key == "pattern") {
      spec->pattern = value.Scalar();
    } else if (key == "abs_tol" || key == "rel_tol") {
      double number = 0;
      if (!absl::SimpleAtod(value.Scalar(), &number)) {
        return ctx.Expected(value, field, "a number");
      }
      (key == "abs_tol" ? spec->abs_tol : spec->rel_tol) = number;
    } else {
      return ctx.Error(entry.first, field,
                       "unknown field (expected compare, extract, pattern, abs_tol, rel_tol)");
    }
  }
  if (auto status = spec->Validate(); !status.ok()) return ctx.Error(node, path, status.message());
  return absl::OkStatus();
}

// A slot's values: a non-empty list of scalars, or {range: [lo, hi], step: s}.
absl::StatusOr<std::vector<std::string>> ParseSlotValues(const Context& ctx, const YAML::Node& node,
                                                         const std::string& path) {
  constexpr absl::string_view kExpected =
      "a non-empty list of values or {range: [lo, hi], step: s} with integers lo <= hi, s >= 1";
  std::vector<std::string> values;
  if (node.IsSequence()) {
    for (const auto& value : node) {
      if (!value.IsScalar()) return ctx.Expected(value, path, "each value to be a scalar");
      values.push_back(value.Scalar());
    }
    if (values.empty()) return ctx.Expected(node, path, kExpected);
    return values;
  }
  if (!node.IsMap() || !node["range"] || !node["range"].IsSequence() || node["range"].size() != 2) {
    return ctx.Expected(node, path, kExpected);
  }
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    if (key != "range" && key != "step") {
      return ctx.Error(entry.first, absl::StrCat(path, ".", key),
                       "unknown field (expected range, step)");
    }
  }
  int64_t lo = 0, hi = 0, step = 1;
  const YAML::Node range = node["range"];
  if (!range[0].IsScalar() || !absl::SimpleAtoi(range[0].Scalar(), &lo) || !range[1].IsScalar() ||
      !absl::SimpleAtoi(range[1].Scalar(), &hi) || lo > hi) {
    return ctx.Expected(range, absl::StrCat(path, ".range"), "[lo, hi] with integers lo <= hi");
  }
  if (node["step"] &&
      (!node["step"].IsScalar() || !absl::SimpleAtoi(node["step"].Scalar(), &step) || step < 1)) {
    return ctx.Expected(node["step"], absl::StrCat(path, ".step"), "an integer >= 1");
  }
  const __int128 count = (static_cast<__int128>(hi) - lo) / step + 1;
  if (count > kMaxSuiteItems) {
    return ctx.Error(node, path,
                     absl::StrCat("the range has more than ", kMaxSuiteItems, " values"));
  }
  for (__int128 value = lo; value <= hi; value += step) {
    values.push_back(absl::StrCat(static_cast<int64_t>(value)));
  }
  return values;
}

absl::Status ExpandTemplateNode(const Context& ctx, const YAML::Node& node, const std::string& path,
                                const std::string& category, int template_idx, int64_t* total,
                                std::vector<SuiteItem>* items) {
  if (!node.IsMap()) return ctx.Expected(node, path, "a mapping {question, answer, slots}");
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    if (key != "question" && key != "answer" && key != "slots") {
      return ctx.Error(entry.first, absl::StrCat(path, ".", key),
                       "unknown field (expected question, answer, slots)");
    }
  }
  const YAML::Node question = node["question"];
  const YAML::Node answer = node["answer"];
  if (!question || !question.IsScalar() || question.Scalar().empty()) {
    return ctx.Expected(question ? question : node, absl::StrCat(path, ".question"),
                        "a non-empty template text");
  }
  if (!answer || !answer.IsScalar() || answer.Scalar().empty()) {
    return ctx.Expected(answer ? answer : node, absl::StrCat(path, ".answer"),
                        "a non-empty template text");
  }
  // Slots in file order.
  std::vector<std::pair<std::string, std::vector<std::string>>> slots;
  if (const YAML::Node slot_nodes = node["slots"]; slot_nodes) {
    if (!slot_nodes.IsMap()) {
      return ctx.Expected(slot_nodes, absl::StrCat(path, ".slots"), "a mapping of slot names");
    }
    for (const auto& entry : slot_nodes) {
      const std::string name = entry.first.Scalar();
      absl::StatusOr<std::vector<std::string>> values =
          ParseSlotValues(ctx, entry.second, absl::StrCat(path, ".slots.", name));
      if (!values.ok()) return values.status();
      slots.emplace_back(name, *std::move(values));
    }
  }
  // Every slot a text uses is defined, and every defined slot is used (a typo otherwise makes
  // identical items).
  std::set<std::string> used;
  for (const auto& [field, text] : {std::pair{"question", question}, std::pair{"answer", answer}}) {
    absl::StatusOr<std::vector<std::string>> names = internal::SlotsUsed(text.Scalar());
    if (!names.ok())
      return ctx.Error(text, absl::StrCat(path, ".", field), names.status().message());
    used.insert(names->begin(), names->end());
  }
  for (const std::string& name : used) {
    if (std::none_of(slots.begin(), slots.end(),
                     [&](const auto& slot) { return slot.first == name; })) {
      return ctx.Error(
          node, path,
          absl::StrCat("the texts use slot \"", name, "\", which slots does not define"));
    }
  }
  for (const auto& slot : slots) {
    if (used.count(slot.first) == 0) {
      return ctx.Error(node["slots"][slot.first], absl::StrCat(path, ".slots.", slot.first),
                       "defined but used by neither question nor answer");
    }
  }
  int64_t combinations = 1;
  for (const auto& slot : slots) {
    combinations *= static_cast<int64_t>(slot.second.size());
    if (*total + combinations > kMaxSuiteItems) {
      return ctx.Error(node, path,
                       absl::StrCat("the suite expands to more than ", kMaxSuiteItems, " items"));
    }
  }
  *total += combinations;
  internal::SlotValues values;
  for (int64_t combination = 0; combination < combinations; ++combination) {
    int64_t rest = combination;
    for (auto it = slots.rbegin(); it != slots.rend(); ++it) {
      const int64_t size = static_cast<int64_t>(it->second.size());
      values[it->first] = it->second[rest % size];
      rest /= size;
    }
    SuiteItem item;
    item.id = absl::StrCat(category, "/", template_idx, "/", combination);
    absl::StatusOr<std::string> text = internal::ExpandTemplate(question.Scalar(), values);
    if (!text.ok()) {
      return ctx.Error(question, absl::StrCat(path, ".question"),
                       absl::StrCat(text.status().message(), " (item ", item.id, ")"));
    }
    item.question = *std::move(text);
    text = internal::ExpandTemplate(answer.Scalar(), values);
    if (!text.ok()) {
      return ctx.Error(answer, absl::StrCat(path, ".answer"),
                       absl::StrCat(text.status().message(), " (item ", item.id, ")"));
    }
    item.answer = *std::move(text);
    items->push_back(std::move(item));
  }
  return absl::OkStatus();
}

absl::Status ParseCategory(const Context& ctx, const YAML::Node& node, const std::string& path,
                           int64_t* total, SuiteCategory* category) {
  if (!node.IsMap()) return ctx.Expected(node, path, "a mapping {name, templates, ...}");
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    if (key != "name" && key != "family" && key != "verifier" && key != "templates") {
      return ctx.Error(entry.first, absl::StrCat(path, ".", key),
                       "unknown field (expected name, family, verifier, templates)");
    }
  }
  const YAML::Node name = node["name"];
  if (!name || !name.IsScalar() || name.Scalar().empty() ||
      name.Scalar().find('/') != std::string::npos) {
    return ctx.Expected(name ? name : node, absl::StrCat(path, ".name"),
                        "a non-empty name without '/'");
  }
  category->name = name.Scalar();
  category->family = category->name;
  if (const YAML::Node family = node["family"]; family) {
    if (!family.IsScalar() || family.Scalar().empty()) {
      return ctx.Expected(family, absl::StrCat(path, ".family"), "a task family name");
    }
    category->family = family.Scalar();
  }
  if (const YAML::Node verifier = node["verifier"]; verifier) {
    if (auto status =
            ParseVerifier(ctx, verifier, absl::StrCat(path, ".verifier"), &category->verifier);
        !status.ok()) {
      return status;
    }
  } else {
    absl::StatusOr<VerifierSpec> spec = DefaultVerifierFor(category->family);
    if (!spec.ok())
      return ctx.Error(node, absl::StrCat(path, ".verifier"), spec.status().message());
    category->verifier = *spec;
  }
  const YAML::Node templates = node["templates"];
  if (!templates || !templates.IsSequence() || templates.size() == 0) {
    return ctx.Expected(templates ? templates : node, absl::StrCat(path, ".templates"),
                        "a non-empty list of templates");
  }
  for (size_t template_idx = 0; template_idx < templates.size(); ++template_idx) {
    if (auto status = ExpandTemplateNode(
            ctx, templates[template_idx], absl::StrCat(path, ".templates[", template_idx, "]"),
            category->name, static_cast<int>(template_idx), total, &category->items);
        !status.ok()) {
      return status;
    }
  }
  return absl::OkStatus();
}

absl::Status ParseReference(const Context& ctx, const YAML::Node& node, Suite* suite) {
  if (!node.IsMap()) return ctx.Expected(node, "reference", "a mapping {run, wrong_rate}");
  for (const auto& entry : node) {
    const std::string key = entry.first.Scalar();
    if (key != "run" && key != "wrong_rate") {
      return ctx.Error(entry.first, absl::StrCat("reference.", key),
                       "unknown field (expected run, wrong_rate)");
    }
  }
  if (const YAML::Node run = node["run"]; run) {
    if (!run.IsScalar()) return ctx.Expected(run, "reference.run", "a run name");
    suite->reference_run = run.Scalar();
  }
  const YAML::Node rates = node["wrong_rate"];
  if (!rates || !rates.IsMap()) {
    return ctx.Expected(rates ? rates : node, "reference.wrong_rate",
                        "a mapping of category name to wrong-answer rate");
  }
  for (const auto& entry : rates) {
    const std::string category = entry.first.Scalar();
    const std::string path = absl::StrCat("reference.wrong_rate.", category);
    double rate = 0;
    if (!entry.second.IsScalar() || !absl::SimpleAtod(entry.second.Scalar(), &rate) ||
        !(rate >= 0 && rate <= 1)) {
      return ctx.Expected(entry.second, path, "a rate in [0, 1]");
    }
    if (std::none_of(suite->categories.begin(), suite->categories.end(),
                     [&](const SuiteCategory& known) { return known.name == category; })) {
      return ctx.Error(entry.first, path, "no category of the suite has this name");
    }
    suite->reference_wrong_rates[category] = rate;
  }
  return absl::OkStatus();
}

}  // namespace

size_t Suite::num_items() const {
  size_t total = 0;
  for (const SuiteCategory& category : categories) total += category.items.size();
  return total;
}

absl::StatusOr<Suite> ParseSuite(absl::string_view yaml, absl::string_view source) {
  const Context ctx(source);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", error.mark.line + 1, ": not valid YAML: ", error.msg));
  }
  if (!root.IsMap()) return ctx.Expected(root, "(top level)", "a mapping {suite, categories}");
  for (const auto& entry : root) {
    const std::string key = entry.first.Scalar();
    if (key != "suite" && key != "description" && key != "categories" && key != "reference") {
      return ctx.Error(entry.first, key,
                       "unknown field (expected suite, description, categories, reference)");
    }
  }
  Suite suite;
  const YAML::Node name = root["suite"];
  if (!name || !name.IsScalar() || name.Scalar().empty()) {
    return ctx.Expected(name ? name : root, "suite", "the suite's name");
  }
  suite.name = name.Scalar();
  if (const YAML::Node description = root["description"]; description) {
    if (!description.IsScalar()) return ctx.Expected(description, "description", "a text");
    suite.description = description.Scalar();
  }
  const YAML::Node categories = root["categories"];
  if (!categories || !categories.IsSequence() || categories.size() == 0) {
    return ctx.Expected(categories ? categories : root, "categories",
                        "a non-empty list of categories");
  }
  int64_t total = 0;
  for (size_t category_idx = 0; category_idx < categories.size(); ++category_idx) {
    const std::string path = absl::StrCat("categories[", category_idx, "]");
    SuiteCategory category;
    if (auto status = ParseCategory(ctx, categories[category_idx], path, &total, &category);
        !status.ok()) {
      return status;
    }
    for (const SuiteCategory& earlier : suite.categories) {
      if (earlier.name == category.name) {
        return ctx.Error(categories[category_idx]["name"], absl::StrCat(path, ".name"),
                         absl::StrCat("\"", Capped(category.name), "\" names two categories"));
      }
    }
    suite.categories.push_back(std::move(category));
  }
  if (const YAML::Node reference = root["reference"]; reference) {
    if (auto status = ParseReference(ctx, reference, &suite); !status.ok()) return status;
  }
  return suite;
}

absl::StatusOr<Suite> LoadSuite(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the suite file"));
  std::stringstream contents;
  contents << in.rdbuf();
  return ParseSuite(contents.str(), path);
}

absl::string_view GradeName(Grade grade) {
  switch (grade) {
    case Grade::kHigh:
      return "H";
    case Grade::kModerateHigh:
      return "MH";
    case Grade::kModerate:
      return "M";
    case Grade::kModerateLow:
      return "ML";
    case Grade::kLow:
      return "L";
  }
  return "?";
}

Grade GradeWrongRate(double wrong_rate, double reference_wrong_rate) {
  // v0.5's band constants: an absolute floor, then multiples of the reference's rate.
  constexpr double kAbsoluteLow = 0.001;
  constexpr double kModerateLowFactor = 0.5;
  constexpr double kModerateFactor = 2;
  constexpr double kModerateHighFactor = 4;
  if (wrong_rate < kAbsoluteLow) return Grade::kLow;
  if (wrong_rate < kModerateLowFactor * reference_wrong_rate) return Grade::kModerateLow;
  if (wrong_rate < kModerateFactor * reference_wrong_rate) return Grade::kModerate;
  if (wrong_rate < kModerateHighFactor * reference_wrong_rate) return Grade::kModerateHigh;
  return Grade::kHigh;
}

absl::StatusOr<std::vector<CategoryScore>> ScoreResponses(
    const Suite& suite, const std::map<std::string, std::string>& responses) {
  std::vector<CategoryScore> scores;
  for (const SuiteCategory& category : suite.categories) {
    absl::StatusOr<Verifier> verifier = Verifier::Create(category.verifier);
    if (!verifier.ok()) return verifier.status();
    CategoryScore& score = scores.emplace_back();
    score.category = category.name;
    for (const SuiteItem& item : category.items) {
      auto it = responses.find(item.id);
      if (it == responses.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("suite ", suite.name, ": no response for item ", item.id));
      }
      ++score.items;
      if (!verifier->Verify(it->second, item.answer).correct) ++score.wrong;
    }
  }
  return scores;
}

absl::StatusOr<SuiteGrade> GradeSuite(absl::Span<const CategoryScore> scores,
                                      const std::map<std::string, double>& reference_wrong_rates) {
  if (scores.empty()) return absl::InvalidArgumentError("grade: no category scores");
  SuiteGrade grade;
  grade.overall = Grade::kLow;
  for (const CategoryScore& score : scores) {
    if (score.items <= 0 || score.wrong < 0 || score.wrong > score.items) {
      return absl::InvalidArgumentError(absl::StrCat("grade: category ", score.category,
                                                     ": expected items >= 1 and 0 <= "
                                                     "wrong <= items, got items=",
                                                     score.items, " wrong=", score.wrong));
    }
    auto it = reference_wrong_rates.find(score.category);
    if (it == reference_wrong_rates.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("grade: category ", score.category, " has no reference wrong rate"));
    }
    if (!(it->second >= 0 && it->second <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat("grade: category ", score.category,
                                                     ": reference wrong rate ", it->second,
                                                     " is not in [0, 1]"));
    }
    CategoryGrade& category = grade.categories.emplace_back();
    category.category = score.category;
    category.items = score.items;
    category.wrong_rate = score.wrong_rate();
    category.reference_wrong_rate = it->second;
    category.grade = GradeWrongRate(category.wrong_rate, category.reference_wrong_rate);
    grade.overall = std::min(grade.overall, category.grade);
  }
  return grade;
}

std::map<std::string, double> WrongRates(absl::Span<const CategoryScore> scores) {
  std::map<std::string, double> rates;
  for (const CategoryScore& score : scores) rates[score.category] = score.wrong_rate();
  return rates;
}

}  // namespace scalelab::tasks
