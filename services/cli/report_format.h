// What `scalelab report carbon|reliability` prints, as pure functions of the API's reports.
#ifndef SCALELAB_SERVICES_CLI_REPORT_FORMAT_H_
#define SCALELAB_SERVICES_CLI_REPORT_FORMAT_H_

#include <ostream>

#include "scalelab/v1/results.pb.h"

namespace scalelab::cli {

// One row per run (energy in Wh, grams CO2e operational/embodied/total, final loss, loss
// improvement, grams per unit of loss improvement), then the totals, the PUE and grid intensity
// used, and the assumptions line.
void PrintCarbonReport(std::ostream& out, const v1::CarbonReport& report);

// Failures by class, MTTF by job size, each run's effective training time ratio against the
// expected one, then the measured rates (r, u0, w), the Young/Daly checkpoint interval and the
// assumptions line. `sweep_id` 0 titles it as the whole cluster's.
void PrintReliabilityReport(std::ostream& out, int64_t sweep_id,
                            const v1::ReliabilityReport& report);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_REPORT_FORMAT_H_
