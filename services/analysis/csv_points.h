// Reading scaling points from a CSV file with a header row.
//
// Columns are found by name (case-insensitive, surrounding spaces ignored), each quantity by
// the first of its aliases present. The loss is required, and enough of N, D and C to know all
// three under C = 6 N D: any two give the third (D = C / (6N), C = 6 N D, N = C / (6D)); C
// alone is enough for the compute-only law (N and D are then 0). Fields may be quoted with
// double quotes (a doubled quote inside is one quote); a quoted field cannot span lines.
#ifndef SCALELAB_SERVICES_ANALYSIS_CSV_POINTS_H_
#define SCALELAB_SERVICES_ANALYSIS_CSV_POINTS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/analysis/scaling_point.h"

namespace scalelab::analysis {

struct CsvColumns {
  std::vector<std::string> n_params = {"N", "n_params", "Model Size"};
  std::vector<std::string> tokens = {"D", "tokens"};
  std::vector<std::string> flops = {"C", "flops", "Training FLOP"};
  std::vector<std::string> loss = {"loss", "val_loss"};
  std::vector<std::string> run_id = {"run_id"};  // optional; an integer when present
};

struct CsvOptions {
  CsvColumns columns;
  char delimiter = ',';
  // Leave out rows whose N, D, C or loss field is empty or 0 (a run that failed or has no run
  // record in `scalelab export`) instead of refusing the file; their 1-based line numbers go
  // to `skipped_lines` when it is set (not owned). Any other bad value is still an error.
  bool skip_incomplete_rows = false;
  std::vector<int>* skipped_lines = nullptr;

  // InvalidArgument when a required quantity has no alias or the delimiter is '"' or a newline.
  absl::Status Validate() const;
};

// Parses `text`; `source` names it in errors, which read
//   <source>:<line>: column "<name>": expected a positive number, got "<value>"
// (values capped at 80 characters). InvalidArgument for a missing column, a row with another
// field count than the header, an unterminated quote, or a value that is not a finite positive
// number (N, D, C, loss) or an integer (run_id). Empty lines are skipped.
absl::StatusOr<std::vector<ScalingPoint>> ParseScalingPointsCsv(absl::string_view text,
                                                                absl::string_view source,
                                                                const CsvOptions& options = {});

// Reads the file at `path` and parses it as above. NotFound when it cannot be opened.
absl::StatusOr<std::vector<ScalingPoint>> ReadScalingPointsCsv(const std::string& path,
                                                               const CsvOptions& options = {});

}  // namespace scalelab::analysis

#endif  // SCALELAB_SERVICES_ANALYSIS_CSV_POINTS_H_
