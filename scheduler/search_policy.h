// Search policies: given the search tree so far (runs, their parents and objectives), the next
// run configs to try. Greedy expands the best run so far; evolutionary keeps a population of the
// best runs and breeds it by tournament selection, crossover and mutation; MCTS walks the tree of
// runs by UCB on the normalized objective and expands the node it lands on with an operator.
//
// Pure functions of (tree, spec, seed, generation): no I/O and no state between calls, so a
// restarted scheduler that reads the same tree from the store proposes the same runs. What MCTS
// keeps between steps (visits, values) is recomputed from the tree each time.
#ifndef SCALELAB_SCHEDULER_SEARCH_POLICY_H_
#define SCALELAB_SCHEDULER_SEARCH_POLICY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "scalelab/v1/common.pb.h"
#include "scheduler/search_space.h"

namespace scalelab::scheduler {

// One run of the tree as a policy sees it.
struct SearchCandidate {
  int64_t run_id = 0;
  SearchPoint point;
  std::vector<int64_t> parents;     // run ids; empty for a draft
  bool finished = false;            // terminal (succeeded, failed or cancelled)
  std::optional<double> objective;  // set when it succeeded and reported the objective
};

// One config a policy asks for.
struct SearchProposal {
  SearchPoint point;
  std::vector<int64_t> parents;
  std::string op;            // "draft" | "perturb" | "scale" | "crossover" | "crossover+perturb"
  std::string policy_state;  // JSON: the parent's score and what the policy weighed
};

inline constexpr double kDefaultPerturbFactor = 1.25;
inline constexpr double kDefaultScaleFactor = 2.0;
inline constexpr int kDefaultParallel = 2;
inline constexpr int kDefaultPopulation = 8;
inline constexpr int kDefaultTournament = 3;
inline constexpr double kDefaultExploration = 1.4;
inline constexpr int kMaxSearchBudget = 10000;

// Fills a SearchSweep's defaults (objective val_loss, goal minimize, operators perturb +
// crossover + scale with their default factors, parallel 2, initial min(parallel, budget),
// seed 1, population 8, tournament 3, exploration 1.4). Idempotent.
void ApplySearchDefaults(scalelab::v1::SearchSweep* search);

// Checks the non-space fields of a SearchSweep after ApplySearchDefaults: policy, operators,
// goal, objective syntax, budget in [1, kMaxSearchBudget], parallel >= 1, initial in
// [1, budget], population >= 1, tournament >= 1, exploration >= 0. InvalidArgument
// "<path>.<field>: expected ..., got ...". `path` is "sweep.search".
absl::Status ValidateSearchFields(const scalelab::v1::SearchSweep& search, const std::string& path);

// Up to `count` proposals for the next step, none repeating a point of `tree` or of each other
// (a policy that keeps landing on known points falls back to a random draft; after many tries
// it returns fewer). With no run scored yet, every proposal is a draft. `spec` has defaults
// applied; `rng` is SearchRng::ForGeneration(seed, generation). Points in `avoid` (configs
// that failed validation before) are treated as taken.
std::vector<SearchProposal> ProposeRuns(const SearchSpace& space,
                                        const scalelab::v1::SearchSweep& spec,
                                        const std::vector<SearchCandidate>& tree, int count,
                                        SearchRng& rng, const std::vector<SearchPoint>& avoid = {});

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SEARCH_POLICY_H_
