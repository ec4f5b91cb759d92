#include "scheduler/search_loop.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "scheduler/expand.h"
#include "scheduler/search_policy.h"
#include "scheduler/search_space.h"
#include "services/common/run_state.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {
namespace {

// The run counts by state: the fingerprint of what a pass saw.
std::string Fingerprint(const v1::Sweep& sweep) {
  std::string text = absl::StrCat(sweep.state(), ";");
  std::map<std::string, int32_t> counts(sweep.runs_by_state().begin(), sweep.runs_by_state().end());
  for (const auto& [state, count] : counts) absl::StrAppend(&text, state, "=", count, ";");
  return text;
}

}  // namespace

absl::Status SearchLoopOptions::Validate() const {
  if (poll_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("search.poll_interval: expected a positive duration, got ",
                     absl::FormatDuration(poll_interval)));
  }
  if (max_skipped < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("search.max_skipped: expected an integer >= 0, got ", max_skipped));
  }
  return absl::OkStatus();
}

absl::StatusOr<services::SearchObjectiveQuery> ParseSearchObjective(const std::string& objective) {
  services::SearchObjectiveQuery query;
  if (!absl::StartsWith(objective, "eval:")) {
    if (objective.empty()) {
      return absl::InvalidArgumentError("objective: expected a metric name, got \"\"");
    }
    query.metric = objective;
    return query;
  }
  query.eval = true;
  const std::string metric = objective.substr(5);
  const size_t at = metric.find('@');
  if (at == std::string::npos) {
    query.metric = metric;
  } else {
    // "pass@1": the evals row with metric "pass@k" and k = 1.
    query.metric = absl::StrCat(metric.substr(0, at), "@k");
    if (!absl::SimpleAtoi(metric.substr(at + 1), &query.k) || query.k < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("objective: expected eval:<metric>[@k] with k a positive integer, got \"",
                       objective, "\""));
    }
  }
  if (query.metric.empty() || at == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("objective: expected eval:<metric>[@k], got \"", objective, "\""));
  }
  return query;
}

int64_t BestSearchRun(const services::SearchState& state, bool maximize, double* best_objective) {
  int64_t best = 0;
  double best_value = 0;
  for (const v1::SearchNode& node : state.nodes) {
    if (!node.has_objective() || !std::isfinite(node.objective())) continue;
    if (best == 0 || (maximize ? node.objective() > best_value : node.objective() < best_value)) {
      best = node.run_id();
      best_value = node.objective();
    }
  }
  if (best_objective != nullptr) *best_objective = best_value;
  return best;
}

absl::StatusOr<v1::GetSearchTreeResponse> ReadSearchTree(services::Store* store, int64_t sweep_id) {
  auto sweep = store->GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();
  if (!sweep->spec().sweep().has_search()) {
    return absl::FailedPreconditionError(
        absl::StrCat("sweep ", sweep_id, " is not a search sweep (it has no search tree)"));
  }
  v1::SearchSweep search = sweep->spec().sweep().search();
  ApplySearchDefaults(&search);
  auto query = ParseSearchObjective(search.objective());
  if (!query.ok()) return query.status();
  auto state = store->GetSearchState(sweep_id, *query);
  if (!state.ok()) return state.status();
  v1::GetSearchTreeResponse response;
  response.set_objective(search.objective());
  response.set_maximize(search.goal() == "maximize");
  response.set_budget(search.budget());
  response.set_generation(state->generation);
  response.set_open(state->open);
  response.set_skipped(state->skipped);
  double best_objective = 0;
  response.set_best_run_id(BestSearchRun(*state, response.maximize(), &best_objective));
  if (response.best_run_id() != 0) response.set_best_objective(best_objective);
  for (v1::SearchNode& node : state->nodes) *response.add_nodes() = std::move(node);
  return response;
}

void SearchLoop::Start() {
  thread_ = std::thread([this] {
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](SearchLoop* loop) ABSL_EXCLUSIVE_LOCKS_REQUIRED(loop->mu_) {
                                   return loop->woken_ || loop->stopping_;
                                 },
                                 this),
                             options_.poll_interval);
        if (stopping_) return;
        woken_ = false;
      }
      if (auto result = RunOnce(); !result.ok()) {
        spdlog::warn("search loop: {}", result.status().ToString());
      }
    }
  });
}

void SearchLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void SearchLoop::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

absl::StatusOr<SearchPassResult> SearchLoop::RunOnce() {
  auto open = store_->ListOpenSearches();
  if (!open.ok()) return open.status();
  SearchPassResult total;
  for (int64_t sweep_id : *open) {
    auto sweep = store_->GetSweep(sweep_id);
    if (!sweep.ok()) return sweep.status();
    const std::string fingerprint = Fingerprint(*sweep);
    if (auto it = seen_.find(sweep_id); it != seen_.end() && it->second == fingerprint) continue;
    auto result = StepSweep(sweep_id);
    if (!result.ok()) {
      // Another scheduler took the step, or the store is away: look again next pass.
      spdlog::warn("search sweep={}: {}", sweep_id, result.status().ToString());
      seen_.erase(sweep_id);
      continue;
    }
    // Only a step that changed nothing may be skipped until the counts move: one that made runs
    // changed them itself, and one that skipped configs may find valid ones on the next step.
    if (result->runs_created == 0 && result->configs_skipped == 0 && result->searches_closed == 0) {
      seen_[sweep_id] = fingerprint;
    } else {
      seen_.erase(sweep_id);
    }
    total.sweeps_stepped += result->sweeps_stepped;
    total.runs_created += result->runs_created;
    total.configs_skipped += result->configs_skipped;
    total.searches_closed += result->searches_closed;
  }
  return total;
}

absl::StatusOr<SearchPassResult> SearchLoop::StepSweep(int64_t sweep_id) {
  auto sweep = store_->GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();
  const v1::SweepSpec& spec = sweep->spec();
  if (!spec.sweep().has_search()) {
    return absl::FailedPreconditionError(absl::StrCat("sweep ", sweep_id, " is not a search"));
  }
  v1::SearchSweep search = spec.sweep().search();
  ApplySearchDefaults(&search);
  auto query = ParseSearchObjective(search.objective());
  if (!query.ok()) return query.status();
  auto state = store_->GetSearchState(sweep_id, *query);
  if (!state.ok()) return state.status();
  SearchPassResult result;
  result.sweeps_stepped = 1;
  if (!state->open) return result;

  auto close = [&](const std::string& why) -> absl::StatusOr<SearchPassResult> {
    auto stored = store_->AddSearchRuns(sweep_id, state->generation, {}, {}, true);
    if (!stored.ok()) return stored.status();
    spdlog::info("search closed sweep={} runs={}: {}", sweep_id, state->runs, why);
    result.searches_closed = 1;
    return result;
  };
  if (state->sweep.state() == v1::SWEEP_STATE_CANCELLED) return close("the sweep was cancelled");
  const int budget_left = search.budget() - state->runs;
  if (budget_left <= 0) return close("budget spent");
  const int wanted = std::min(search.parallel() - state->unfinished, budget_left);
  if (wanted <= 0) return result;

  std::vector<SearchCandidate> tree;
  bool any_scored = false;
  for (const v1::SearchNode& node : state->nodes) {
    SearchCandidate candidate;
    candidate.run_id = node.run_id();
    candidate.point = SearchPoint(node.point().begin(), node.point().end());
    candidate.parents.assign(node.parent_run_ids().begin(), node.parent_run_ids().end());
    candidate.finished = services::IsTerminal(node.state());
    if (node.has_objective()) candidate.objective = node.objective();
    any_scored = any_scored || node.has_objective();
    tree.push_back(std::move(candidate));
  }
  // The policy needs a scored run; until one finishes, drafts in flight are the search.
  if (!any_scored && state->unfinished > 0) return result;

  auto space = SearchSpace::Create(search.dimensions(), "sweep.search.space");
  if (!space.ok()) return space.status();
  SearchRng rng = SearchRng::ForGeneration(search.seed(), state->generation + 1);
  std::vector<SearchProposal> proposals =
      ProposeRuns(*space, search, tree, wanted, rng, state->skipped_points);

  std::vector<services::NewRun> runs;
  std::vector<services::SkippedSearchConfig> skipped;
  for (SearchProposal& proposal : proposals) {
    auto run = BuildPointRun(spec, proposal.point, state->runs + static_cast<int>(runs.size()));
    if (!run.ok()) {
      skipped.push_back(
          {proposal.point, proposal.parents, proposal.op, std::string(run.status().message())});
      continue;
    }
    services::NewRun stored;
    stored.index = run->index;
    stored.config = std::move(run->config);
    stored.overrides = std::move(run->overrides);
    stored.kind = run->kind;
    stored.stage = run->stage;
    stored.search_operator = proposal.op;
    stored.search_parents = proposal.parents;
    stored.search_policy_state = proposal.policy_state;
    runs.push_back(std::move(stored));
  }
  const int max_skipped =
      options_.max_skipped > 0 ? options_.max_skipped : std::max(20, 2 * search.budget());
  bool closing = state->runs + static_cast<int>(runs.size()) >= search.budget();
  std::string why = "budget spent";
  if (state->skipped + static_cast<int>(skipped.size()) >= max_skipped) {
    closing = true;
    why = absl::StrCat(max_skipped, " generated configs failed validation");
  }
  if (proposals.empty() && state->unfinished == 0) {
    closing = true;
    why = "no new point of the space left to try";
  }
  if (runs.empty() && skipped.empty() && !closing) return result;
  auto stored = store_->AddSearchRuns(sweep_id, state->generation, runs, skipped, closing);
  if (!stored.ok()) return stored.status();
  result.runs_created = static_cast<int>(stored->size());
  result.configs_skipped = static_cast<int>(skipped.size());
  result.searches_closed = closing ? 1 : 0;
  spdlog::info("search step sweep={} generation={} runs={} skipped={}{}", sweep_id,
               state->generation + 1, runs.size(), skipped.size(),
               closing ? absl::StrCat(" closed: ", why) : std::string());
  return result;
}

}  // namespace scalelab::scheduler
