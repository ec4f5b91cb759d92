// Scaling-law fits of a sweep: which runs form a fit group, what a group's fit is, and how a
// stored fit answers GetFits (allocations for budgets, efficiency comparisons). Pure functions
// over protos and services::StoredFit; the analysis library does the mathematics, the fitter
// (fitter.h) decides when to call them, the store keeps the results.
//
// Inputs of a fit come from each run's record as the runtime reported it (RunRecord): N = its
// non-embedding parameters, D = tokens trained, C = FLOPs; the loss is the run's final value
// of FitSpec.metric. Only SUCCEEDED runs with a complete record and a finite positive loss are
// fitted; the others are named in the fit's message.
#ifndef SCALELAB_SCHEDULER_FITTING_H_
#define SCALELAB_SCHEDULER_FITTING_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "scalelab/v1/common.pb.h"
#include "scalelab/v1/results.pb.h"
#include "services/store/store.h"

namespace scalelab::scheduler {

// The runs sharing one value of every FitSpec.group_by key (taken from the run's overrides).
struct FitGroup {
  std::map<std::string, std::string> key;           // empty when the spec has no group_by
  std::vector<const v1::Run*> runs;                 // not owned; in the order given
  bool complete = true;                             // every run is SUCCEEDED, FAILED or CANCELLED
  absl::Time newest_update = absl::InfinitePast();  // latest Run.updated_at
};

// Groups runs by spec.group_by, groups ordered by key. Runs must outlive the result. Only the
// runs a scaling law describes take part (IsFittedRun); the others are left out.
std::vector<FitGroup> GroupRuns(const v1::FitSpec& spec, const std::vector<v1::Run>& runs);

// True for a main-stage pretraining run (no parent_run_id, kind PRETRAIN, or UNSPECIFIED as in
// runs stored before kinds were per run): a pipeline's SFT, GRPO and eval runs neither count
// towards a group being complete nor add points.
bool IsFittedRun(const v1::Run& run);

struct FitSettings {
  int threads = 0;    // threads for the grid and the bootstrap; 0 = all cores
  uint64_t seed = 1;  // bootstrap seed
  // The fit program (scheduler/fit_process.h); "" = scalelab-fit-group beside this executable,
  // else the one this build made.
  std::string program;
};

// Fits one group with spec.law (chinchilla | compute) and spec.bootstrap refits. The result is
// always a row to store. The fit runs in a child process (fit_process.h). When the group cannot
// be fitted (too few usable runs, no start
// converged) params are empty and `message` says why, so the fitter does not retry it until
// its runs change. `final_loss` maps run id to the final value of spec.metric.
services::StoredFit FitOneGroup(int64_t sweep_id, const v1::FitSpec& spec, const FitGroup& group,
                                const std::map<int64_t, double>& final_loss,
                                const FitSettings& settings);

// A stored fit as GetFits returns it: parameters (and A, B, E, k), every estimate with its
// interval, for chinchilla fits the compute-optimal allocation of each budget (FLOPs).
v1::Fit ToFitProto(const services::StoredFit& fit, const std::vector<double>& budgets_flops);

// Budgets GetFits uses when the caller names none: 1e18 .. 1e24 FLOPs by factors of 10.
std::vector<double> DefaultBudgets();

// Data-efficiency multipliers between every pair of usable chinchilla fits of a sweep (group i
// against each later group j; `faster` is whichever needs fewer tokens at the point value).
// n_params 0 = the largest N any group fitted; target_loss 0 = the first group's prediction at
// that N with the most tokens any group was trained on. `records` maps run id to its record (for
// those defaults). Pairs where either group cannot reach the target are left out.
std::vector<v1::EfficiencyComparison> CompareGroups(
    const std::vector<services::StoredFit>& fits, double n_params, double target_loss,
    const std::map<int64_t, v1::RunRecord>& records);

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_FITTING_H_
