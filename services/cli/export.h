// `scalelab export`: a sweep's runs or metric points as tidy tables for notebooks (one row per
// observation, one column per variable), written as CSV (RFC 4180 quoting, "\n" line ends) or as a
// JSON array of records (pandas.read_csv / pandas.read_json(orient="records") read them as they
// are). Pure functions of the API's messages; commands make the calls.
#ifndef SCALELAB_SERVICES_CLI_EXPORT_H_
#define SCALELAB_SERVICES_CLI_EXPORT_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "scalelab/v1/results.pb.h"

namespace scalelab::cli {

// A cell: text, an integer, or a number. NaN numbers are missing values: an empty CSV field,
// JSON null.
using Cell = std::variant<std::string, int64_t, double>;

struct TidyTable {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;  // each as long as `columns`
};

// One row per run: run_id, index, state, one column per override key (the union over the runs,
// in key order; missing where a run lacks it), n_params, n_params_total, tokens, flops,
// flops_per_token (the run record; tokens falls back to the last reported count when the record
// has none), train_loss, val_loss (last reported), energy_j, attempts. Override values that
// read as numbers are numbers.
TidyTable RunTable(const std::vector<v1::Run>& runs);

// One row per point: run_id, attempt, step, tokens, name, value, wall_time_s, then the run's
// override columns. `curves_by_metric` holds one GetSweepCurves answer per metric name, with the
// name asked for (used when a point carries none).
TidyTable PointTable(
    const std::vector<std::pair<std::string, v1::GetSweepCurvesResponse>>& curves_by_metric);

void WriteCsv(std::ostream& out, const TidyTable& table);
void WriteJson(std::ostream& out, const TidyTable& table);

// `text` as one CSV field: quoted (quotes doubled) when it holds a comma, a quote, a line break
// or leading or trailing blanks, else as it is.
std::string CsvField(absl::string_view text);
// `text` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view text);
// The shortest decimal form that reads back as exactly `value` ("0.1", "4096", "1e+19").
std::string ShortestDouble(double value);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_EXPORT_H_
