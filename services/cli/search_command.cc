#include "services/cli/search_command.h"

#include <cmath>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/cli/calls.h"
#include "services/cli/format.h"
#include "services/common/run_state.h"

namespace scalelab::cli {

std::string FormatSearchTree(int64_t sweep_id, const v1::GetSearchTreeResponse& tree) {
  std::string out =
      absl::StrCat("search sweep ", sweep_id, ": objective ", tree.objective(), " (",
                   tree.maximize() ? "maximize" : "minimize", "), budget ", tree.budget(), ", ",
                   tree.nodes_size(), " runs, ", tree.generation(), " steps, ",
                   tree.open() ? "open" : "closed", ", ", tree.skipped(), " configs skipped\n");
  absl::StrAppendFormat(&out, "%-7s %-5s %-10s %-18s %-13s %-11s %-11s %s\n", "RUN", "INDEX",
                        "STATE", "OPERATOR", "PARENTS", "OBJECTIVE", "BEST", "POINT");
  bool have_best = false;
  double best = 0;
  for (const v1::SearchNode& node : tree.nodes()) {
    std::string objective = "-";
    if (node.has_objective()) {
      objective = absl::StrFormat("%.5g", node.objective());
      if (!have_best || (tree.maximize() ? node.objective() > best : node.objective() < best)) {
        best = node.objective();
        have_best = true;
      }
    }
    const std::string parents =
        node.parent_run_ids().empty() ? "-" : absl::StrJoin(node.parent_run_ids(), ",");
    const std::map<std::string, std::string> point(node.point().begin(), node.point().end());
    absl::StrAppendFormat(&out, "%-7d %-5d %-10s %-18s %-13s %-11s %-11s %s\n", node.run_id(),
                          node.index(), services::RunStateName(node.state()),
                          node.operator_().empty() ? "-" : node.operator_(), parents, objective,
                          have_best ? absl::StrFormat("%.5g", best) : "-",
                          absl::StrJoin(point, " ", absl::PairFormatter("=")));
  }
  if (tree.best_run_id() != 0) {
    absl::StrAppend(&out, "best: run ", tree.best_run_id(), " (", tree.objective(), " ",
                    absl::StrFormat("%.5g", tree.best_objective()), ")\n");
  } else {
    absl::StrAppend(&out, "best: none yet (no run has finished with ", tree.objective(), ")\n");
  }
  return out;
}

int Search(CliContext& cli, int64_t sweep_id) {
  v1::GetSearchTreeRequest request;
  request.set_sweep_id(sweep_id);
  v1::GetSearchTreeResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.sweeps->GetSearchTree(&context, request, &response);
  if (!status.ok()) return Fail(cli, "search", status);
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(response) << "\n";
  } else {
    *cli.out << FormatSearchTree(sweep_id, response);
  }
  return 0;
}

}  // namespace scalelab::cli
