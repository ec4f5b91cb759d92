// The field-level CSV reading shared by the CSV readers of services/analysis (csv_points.h,
// rl_predictor.h). Private to services/analysis.
#ifndef SCALELAB_SERVICES_ANALYSIS_INTERNAL_CSV_FIELDS_H_
#define SCALELAB_SERVICES_ANALYSIS_INTERNAL_CSV_FIELDS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace scalelab::analysis::internal {

// `text` quoted and C-escaped for an error message, cut to 80 characters (with the count of
// bytes left out): a 2 MB field must not make a 2 MB error.
std::string QuotedForError(absl::string_view text);

// One line split into fields at `delimiter`. Fields may be quoted with double quotes (a doubled
// quote inside is one quote); nullopt for an unterminated quote.
std::optional<std::vector<std::string>> SplitCsvFields(absl::string_view line, char delimiter);

}  // namespace scalelab::analysis::internal

#endif  // SCALELAB_SERVICES_ANALYSIS_INTERNAL_CSV_FIELDS_H_
