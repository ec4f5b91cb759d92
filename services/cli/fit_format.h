// What `scalelab fit` prints: fitted laws with their bootstrap intervals, compute-optimal
// allocations and data-efficiency comparisons, as pure functions of GetFitsResponse (the server's
// fits and the local CSV fit print alike).
#ifndef SCALELAB_SERVICES_CLI_FIT_FORMAT_H_
#define SCALELAB_SERVICES_CLI_FIT_FORMAT_H_

#include <ostream>
#include <string>

#include "google/protobuf/map.h"
#include "scalelab/v1/results.pb.h"
#include "scalelab/v1/sweep.pb.h"

namespace scalelab::cli {

// "0.3473 [0.31, 0.39]": the value to `digits` significant digits, the interval to as many as it
// takes to tell lo from hi (at least 2). Without an interval (NaN bounds) only the value.
std::string EstimateText(const v1::Estimate& estimate, int digits);

// "data.mix=web model.family=gpt" in key order; "all runs" for the empty group.
std::string GroupText(const google::protobuf::Map<std::string, std::string>& group);

// Per fit: law, group, points, objective, every parameter with its interval, the held-out
// extrapolation error and the allocation table; then the comparisons. A fit that carries only
// a message (a group with too few points) prints that message.
void PrintFits(std::ostream& out, const v1::GetFitsResponse& fits);

// Why a sweep has no fits yet, in one line, from its state and fit spec: still running, asks
// for no fit, or ended without one.
std::string NoFitsReason(const v1::Sweep& sweep);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_FIT_FORMAT_H_
