#include "model/task_eval.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/generation.h"
#include "model/mix_seed.h"
#include "tasks/pass_at_k.h"
#include "tasks/suite.h"

namespace scalelab::model {
namespace {

// Prompts generated per Generate call: bounds the batch (and its KV cache) whatever
// problems x samples is.
constexpr size_t kPromptsPerCall = 512;

// One item to answer: its prompt, reference answer, category and verifier.
struct EvalItem {
  std::string question;
  std::string answer;
  std::string category;
  const tasks::Verifier* verifier = nullptr;
};

struct ItemOutcome {
  int64_t correct = 0;
  int64_t completion_tokens = 0;
};

// Draws `samples` completions of every item and verifies them. Sample s of item i is prompt
// i * samples + s; each chunk of kPromptsPerCall prompts samples with its own seed, so the
// outcome is a function of (seed, items, samples, model).
absl::StatusOr<std::vector<ItemOutcome>> SampleAndVerify(CausalLM& model,
                                                         const std::vector<EvalItem>& items,
                                                         const scalelab::v1::TaskEvalSpec& spec,
                                                         uint64_t seed) {
  const size_t samples = static_cast<size_t>(spec.samples());
  std::vector<std::vector<int64_t>> prompts;
  prompts.reserve(items.size() * samples);
  for (const EvalItem& item : items) {
    const std::vector<int64_t> tokens = EncodeBytes(item.question);
    for (size_t sample = 0; sample < samples; ++sample) prompts.push_back(tokens);
  }
  GenerateOptions options;
  options.max_new_tokens = spec.max_new_tokens();
  options.temperature = spec.greedy() ? 0.0 : spec.temperature();
  options.stop = {{static_cast<int64_t>(static_cast<unsigned char>(kEndOfResponse))}};
  std::vector<ItemOutcome> outcomes(items.size());
  for (size_t first = 0; first < prompts.size(); first += kPromptsPerCall) {
    const size_t last = std::min(prompts.size(), first + kPromptsPerCall);
    const std::vector<std::vector<int64_t>> chunk(prompts.begin() + first, prompts.begin() + last);
    options.seed = MixSeed(seed, first / kPromptsPerCall);
    absl::StatusOr<std::vector<Generation>> generations = Generate(model, chunk, options);
    if (!generations.ok()) return generations.status();
    for (size_t offset = 0; offset < generations->size(); ++offset) {
      const size_t item_idx = (first + offset) / samples;
      const Generation& generation = (*generations)[offset];
      const EvalItem& item = items[item_idx];
      if (item.verifier->Verify(DecodeBytes(generation.tokens), item.answer).correct) {
        ++outcomes[item_idx].correct;
      }
      outcomes[item_idx].completion_tokens += static_cast<int64_t>(generation.tokens.size());
    }
  }
  return outcomes;
}

// The k reported: spec.k, else {1, samples}; sorted, without repeats.
std::vector<int64_t> KsOf(const scalelab::v1::TaskEvalSpec& spec) {
  std::set<int64_t> ks(spec.k().begin(), spec.k().end());
  if (ks.empty()) ks = {1, spec.samples()};
  return std::vector<int64_t>(ks.begin(), ks.end());
}

scalelab::v1::EvalResult Result(const std::string& task_set, const std::string& split,
                                const std::string& category, const std::string& metric,
                                int64_t step, int32_t samples, int64_t k, double value,
                                int64_t problems) {
  scalelab::v1::EvalResult result;
  result.set_step(step);
  result.set_task_set(task_set);
  result.set_split(split);
  result.set_category(category);
  result.set_metric(metric);
  result.set_n(samples);
  result.set_k(static_cast<int32_t>(k));
  result.set_value(value);
  result.set_problems(problems);
  return result;
}

// pass@k of the items in `members` (indices into outcomes), written as results of `category`.
absl::StatusOr<std::vector<tasks::PassAtKValue>> ReportPassAtK(
    const std::vector<ItemOutcome>& outcomes, const std::vector<size_t>& members,
    const scalelab::v1::TaskEvalSpec& spec, uint64_t seed, const std::string& task_set,
    const std::string& split, const std::string& category, int64_t step, MetricSink& sink) {
  std::vector<tasks::SampleCounts> counts;
  counts.reserve(members.size());
  for (size_t member : members) counts.push_back({spec.samples(), outcomes[member].correct});
  tasks::PassAtKOptions options;
  options.ks = KsOf(spec);
  options.bootstrap_samples = spec.bootstrap();
  options.seed = seed;
  absl::StatusOr<std::vector<tasks::PassAtKValue>> values = tasks::EstimatePassAtK(counts, options);
  if (!values.ok()) return values.status();
  for (const tasks::PassAtKValue& value : *values) {
    scalelab::v1::EvalResult result =
        Result(task_set, split, category, "pass@k", step, spec.samples(), value.k, value.mean,
               static_cast<int64_t>(members.size()));
    if (spec.bootstrap() > 0) {
      // Percentiles of resampled means can miss the mean by rounding when all values agree.
      result.set_low(std::min(value.lo, value.mean));
      result.set_high(std::max(value.hi, value.mean));
    }
    sink.WriteEval(result);
  }
  return values;
}

TaskEvalSummary Summarize(const std::string& task_set, const std::string& split,
                          const std::vector<ItemOutcome>& outcomes,
                          const std::vector<tasks::PassAtKValue>& values, int32_t samples) {
  TaskEvalSummary summary;
  summary.task_set = task_set;
  summary.split = split;
  summary.problems = static_cast<int64_t>(outcomes.size());
  summary.samples = samples;
  for (const tasks::PassAtKValue& value : values) {
    summary.pass_at_k[static_cast<int32_t>(value.k)] = value.mean;
  }
  int64_t tokens = 0;
  for (const ItemOutcome& outcome : outcomes) tokens += outcome.completion_tokens;
  summary.mean_completion_tokens = outcomes.empty() ? 0.0
                                                    : static_cast<double>(tokens) /
                                                          static_cast<double>(outcomes.size()) /
                                                          static_cast<double>(samples);
  return summary;
}

// Items grouped by category in first-seen order; `all` gets every index.
std::vector<std::pair<std::string, std::vector<size_t>>> GroupByCategory(
    const std::vector<EvalItem>& items) {
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  for (size_t item_idx = 0; item_idx < items.size(); ++item_idx) {
    auto group = std::find_if(groups.begin(), groups.end(), [&](const auto& entry) {
      return entry.first == items[item_idx].category;
    });
    if (group == groups.end()) {
      groups.emplace_back(items[item_idx].category, std::vector<size_t>{});
      group = groups.end() - 1;
    }
    group->second.push_back(item_idx);
  }
  return groups;
}

absl::StatusOr<TaskEvalSummary> EvaluateTaskSet(CausalLM& model, const TaskSet& set,
                                                const scalelab::v1::TaskEvalSpec& spec,
                                                int64_t step, uint64_t seed, MetricSink& sink) {
  absl::StatusOr<tasks::Split> split = tasks::ParseSplit(spec.split());
  if (!split.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("eval.tasks.split: ", split.status().message()));
  }
  absl::StatusOr<std::vector<tasks::Problem>> problems = set.Problems(*split, 0, spec.problems());
  if (!problems.ok()) return problems.status();
  std::vector<EvalItem> items;
  items.reserve(problems->size());
  for (const tasks::Problem& problem : *problems) {
    items.push_back({PromptText(problem), problem.answer, problem.family, &set.verifier()});
  }
  absl::StatusOr<std::vector<ItemOutcome>> outcomes =
      SampleAndVerify(model, items, spec, MixSeed(seed, static_cast<uint64_t>(step)));
  if (!outcomes.ok()) return outcomes.status();
  const std::string split_name(tasks::SplitName(*split));
  std::vector<size_t> all(items.size());
  for (size_t idx = 0; idx < all.size(); ++idx) all[idx] = idx;
  absl::StatusOr<std::vector<tasks::PassAtKValue>> overall =
      ReportPassAtK(*outcomes, all, spec, seed, set.name(), split_name, "", step, sink);
  if (!overall.ok()) return overall.status();
  const auto groups = GroupByCategory(items);
  if (groups.size() > 1) {
    for (const auto& [category, members] : groups) {
      absl::StatusOr<std::vector<tasks::PassAtKValue>> values = ReportPassAtK(
          *outcomes, members, spec, seed, set.name(), split_name, category, step, sink);
      if (!values.ok()) return values.status();
    }
  }
  return Summarize(set.name(), split_name, *outcomes, *overall, spec.samples());
}

// Every item of the suite, spec.samples completions each: pass@k and accuracy (the fraction of
// correct samples, 1 - the wrong rate the grading rule reads) per category and for the whole
// suite, and when the suite file names reference wrong rates for every category, the v0.5 grade
// per category and overall (metric "grade", the numeric grade 1 = H .. 5 = L).
absl::StatusOr<TaskEvalSummary> EvaluateSuite(CausalLM& model,
                                              const scalelab::v1::TaskEvalSpec& spec, int64_t step,
                                              uint64_t seed, MetricSink& sink) {
  absl::StatusOr<tasks::Suite> suite = tasks::LoadSuite(spec.suite());
  if (!suite.ok()) {
    return absl::Status(suite.status().code(),
                        absl::StrCat("eval.tasks.suite: ", suite.status().message()));
  }
  std::vector<std::unique_ptr<tasks::Verifier>> verifiers;
  std::vector<EvalItem> items;
  for (const tasks::SuiteCategory& category : suite->categories) {
    absl::StatusOr<tasks::Verifier> verifier = tasks::Verifier::Create(category.verifier);
    if (!verifier.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("eval.tasks.suite: category ", category.name,
                                                     ": ", verifier.status().message()));
    }
    verifiers.push_back(std::make_unique<tasks::Verifier>(*std::move(verifier)));
    for (const tasks::SuiteItem& item : category.items) {
      items.push_back({item.question, item.answer, category.name, verifiers.back().get()});
    }
  }
  if (items.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("eval.tasks.suite: ", spec.suite(), " expands to no items"));
  }
  absl::StatusOr<std::vector<ItemOutcome>> outcomes =
      SampleAndVerify(model, items, spec, MixSeed(seed, static_cast<uint64_t>(step)));
  if (!outcomes.ok()) return outcomes.status();
  const std::string split = "test";
  std::vector<size_t> all(items.size());
  for (size_t idx = 0; idx < all.size(); ++idx) all[idx] = idx;
  absl::StatusOr<std::vector<tasks::PassAtKValue>> overall =
      ReportPassAtK(*outcomes, all, spec, seed, suite->name, split, "", step, sink);
  if (!overall.ok()) return overall.status();
  std::vector<tasks::CategoryScore> scores;
  for (const auto& [category, members] : GroupByCategory(items)) {
    absl::StatusOr<std::vector<tasks::PassAtKValue>> values =
        ReportPassAtK(*outcomes, members, spec, seed, suite->name, split, category, step, sink);
    if (!values.ok()) return values.status();
    tasks::CategoryScore& score = scores.emplace_back();
    score.category = category;
    for (size_t member : members) {
      score.items += spec.samples();
      score.wrong += spec.samples() - (*outcomes)[member].correct;
    }
    sink.WriteEval(Result(suite->name, split, category, "accuracy", step, spec.samples(), 1,
                          1.0 - score.wrong_rate(), static_cast<int64_t>(members.size())));
  }
  bool graded = !suite->reference_wrong_rates.empty();
  for (const tasks::CategoryScore& score : scores) {
    graded = graded && suite->reference_wrong_rates.count(score.category) > 0;
  }
  if (graded) {
    absl::StatusOr<tasks::SuiteGrade> grade =
        tasks::GradeSuite(scores, suite->reference_wrong_rates);
    if (!grade.ok()) return grade.status();
    for (const tasks::CategoryGrade& category : grade->categories) {
      sink.WriteEval(Result(suite->name, split, category.category, "grade", step, spec.samples(), 1,
                            static_cast<double>(category.grade), category.items));
    }
    sink.WriteEval(Result(suite->name, split, "", "grade", step, spec.samples(), 1,
                          static_cast<double>(grade->overall), static_cast<int64_t>(items.size())));
  }
  return Summarize(suite->name, split, *outcomes, *overall, spec.samples());
}

}  // namespace

absl::StatusOr<TaskEvalSummary> EvaluateTasks(CausalLM& model,
                                              const scalelab::v1::TaskEvalSpec& spec,
                                              const TaskSet* run_tasks, int64_t step,
                                              uint64_t fallback_seed, MetricSink& sink) {
  if (spec.samples() < 1 || spec.problems() < 1 || spec.max_new_tokens() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "eval.tasks: expected problems, samples and max_new_tokens >= 1 (defaults applied), got ",
        spec.problems(), ", ", spec.samples(), " and ", spec.max_new_tokens()));
  }
  for (int32_t k : spec.k()) {
    if (k < 1 || k > spec.samples()) {
      return absl::InvalidArgumentError(absl::StrCat("eval.tasks.k: expected values in [1, ",
                                                     spec.samples(), "] (samples), got ", k));
    }
  }
  const uint64_t seed = spec.seed() != 0 ? static_cast<uint64_t>(spec.seed()) : fallback_seed;
  std::optional<TaskSet> own;
  const TaskSet* set = run_tasks;
  if (!spec.tasks().generator().empty() || !spec.tasks().path().empty()) {
    absl::StatusOr<TaskSet> opened = TaskSet::Open(spec.tasks());
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("eval.tasks.tasks: ", opened.status().message()));
    }
    own = *std::move(opened);
    set = &*own;
  }
  if (set == nullptr && spec.suite().empty()) {
    return absl::InvalidArgumentError(
        "eval.tasks: expected a task set (eval.tasks.tasks.generator or .path, or the run's "
        "sft.tasks / grpo.tasks) or eval.tasks.suite, got none");
  }
  std::optional<TaskEvalSummary> summary;
  if (set != nullptr) {
    absl::StatusOr<TaskEvalSummary> evaluated =
        EvaluateTaskSet(model, *set, spec, step, seed, sink);
    if (!evaluated.ok()) return evaluated.status();
    summary = *std::move(evaluated);
  }
  if (!spec.suite().empty()) {
    absl::StatusOr<TaskEvalSummary> evaluated = EvaluateSuite(model, spec, step, seed, sink);
    if (!evaluated.ok()) return evaluated.status();
    if (!summary) summary = *std::move(evaluated);
  }
  return *summary;
}

}  // namespace scalelab::model
