// `scalelab search SWEEP`: the search tree of a search sweep (SweepService.GetSearchTree), one
// line per run in index order with its operator, parents, objective and the best so far.
#ifndef SCALELAB_SERVICES_CLI_SEARCH_COMMAND_H_
#define SCALELAB_SERVICES_CLI_SEARCH_COMMAND_H_

#include <cstdint>
#include <string>

#include "scalelab/v1/sweep.pb.h"
#include "services/cli/commands.h"

namespace scalelab::cli {

// The table `scalelab search` prints (pure; tests call it).
std::string FormatSearchTree(int64_t sweep_id, const v1::GetSearchTreeResponse& tree);

int Search(CliContext& cli, int64_t sweep_id);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_SEARCH_COMMAND_H_
