// A search sweep end to end: the real scheduler with its search loop, a real worker and the real
// trainer. The drafts run, the loop derives new runs from the finished ones until the budget is
// spent, and the sweep ends with every run done, its tree recorded and the best run reported.
#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "absl/strings/str_replace.h"
#include "scheduler/search_loop.h"
#include "services/cli/search_command.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

TEST_CASE("A search sweep grows from its drafts to its budget and reports its best run",
          "[integration][slow][search]") {
  Stack stack;
  stack.StartWorker(/*slots=*/2);
  const std::string manifest =
      absl::StrReplaceAll(stack.Manifest("lr-search", 2e4, "{}"),
                          {{"  grid: {}",
                            "  search:\n"
                            "    policy: greedy\n"
                            "    space: {train.lr: {low: 1e-3, high: 3e-2, log: true}}\n"
                            "    operators: [perturb, crossover]\n"
                            "    objective: val_loss\n"
                            "    budget: 6\n"
                            "    parallel: 2\n"
                            "    initial: 2\n"}});
  auto submitted = stack.Submit(manifest);
  const int64_t sweep_id = submitted.sweep().id();
  CHECK(submitted.sweep().total_runs() == 2);

  std::vector<v1::Run> runs = stack.WaitForRuns(
      sweep_id,
      [&](const std::vector<v1::Run>&) {
        return stack.GetSweep(sweep_id).state() != v1::SWEEP_STATE_RUNNING;
      },
      300);
  CHECK(stack.GetSweep(sweep_id).state() == v1::SWEEP_STATE_SUCCEEDED);
  REQUIRE(runs.size() == 6);

  v1::GetSearchTreeRequest request;
  request.set_sweep_id(sweep_id);
  v1::GetSearchTreeResponse tree;
  grpc::ClientContext context;
  REQUIRE(stack.sweeps().GetSearchTree(&context, request, &tree).ok());
  INFO(cli::FormatSearchTree(sweep_id, tree));
  CHECK(!tree.open());
  REQUIRE(tree.nodes_size() == 6);
  int derived = 0;
  std::set<int64_t> ids;
  for (const v1::SearchNode& node : tree.nodes()) {
    CHECK(node.state() == v1::RUN_STATE_SUCCEEDED);
    CHECK(node.has_objective());
    for (int64_t parent : node.parent_run_ids()) CHECK(ids.count(parent) == 1);
    ids.insert(node.run_id());
    if (node.operator_() != "draft") ++derived;
  }
  // Two drafts at submission, then the policy's runs: a derived point that repeats one already
  // tried (a perturbation clamped at the range's end) falls back to a fresh draft, so at least
  // three of the four are derived.
  CHECK(derived >= 3);
  REQUIRE(tree.best_run_id() != 0);
  for (const v1::Run& run : runs) {
    if (run.id() == tree.best_run_id()) CHECK(run.val_loss() == tree.best_objective());
  }
}

}  // namespace
}  // namespace scalelab::testing
