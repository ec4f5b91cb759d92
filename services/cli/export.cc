#include "services/cli/export.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "services/common/run_state.h"

namespace scalelab::cli {
namespace {

const char* const kRunColumnsBefore[] = {"run_id", "index", "state"};
const char* const kRunColumnsAfter[] = {"n_params", "n_params_total",  "tokens",
                                        "flops",    "flops_per_token", "train_loss",
                                        "val_loss", "energy_j",        "attempts"};
const char* const kPointColumns[] = {"run_id", "attempt", "step",       "tokens",
                                     "name",   "value",   "wall_time_s"};

// Manifest values arrive as text ("64", "3e-4", "web"); notebooks want the numbers as numbers.
Cell OverrideCell(const std::string& text) {
  int64_t integer = 0;
  if (absl::SimpleAtoi(text, &integer)) return integer;
  double number = 0;
  if (absl::SimpleAtod(text, &number) && std::isfinite(number)) return number;
  return text;
}

// The union of the runs' override keys, in key order, each with its column name: the key
// itself, or "override.KEY" in the unlikely case that it is also a fixed column's name.
std::vector<std::pair<std::string, std::string>> OverrideColumns(
    const std::vector<const v1::Run*>& runs, const std::set<std::string>& fixed) {
  std::set<std::string> keys;
  for (const v1::Run* run : runs) {
    for (const auto& [key, value] : run->overrides()) keys.insert(key);
  }
  std::vector<std::pair<std::string, std::string>> columns;
  for (const std::string& key : keys) {
    columns.emplace_back(key, fixed.count(key) > 0 ? "override." + key : key);
  }
  return columns;
}

void AppendOverrides(const v1::Run& run,
                     const std::vector<std::pair<std::string, std::string>>& columns,
                     std::vector<Cell>* row) {
  for (const auto& [key, column] : columns) {
    auto value = run.overrides().find(key);
    // A run without the key has a missing value there: an empty field, JSON null.
    row->push_back(value == run.overrides().end() ? Cell(std::nan(""))
                                                  : OverrideCell(value->second));
  }
}

std::set<std::string> FixedColumns() {
  std::set<std::string> fixed;
  for (const char* name : kRunColumnsBefore) fixed.insert(name);
  for (const char* name : kRunColumnsAfter) fixed.insert(name);
  for (const char* name : kPointColumns) fixed.insert(name);
  return fixed;
}

std::string CsvCell(const Cell& cell) {
  if (const auto* text = std::get_if<std::string>(&cell)) return CsvField(*text);
  if (const auto* integer = std::get_if<int64_t>(&cell)) return absl::StrCat(*integer);
  const double number = std::get<double>(cell);
  return std::isnan(number) ? "" : ShortestDouble(number);
}

std::string JsonCell(const Cell& cell) {
  if (const auto* text = std::get_if<std::string>(&cell)) return JsonString(*text);
  if (const auto* integer = std::get_if<int64_t>(&cell)) return absl::StrCat(*integer);
  const double number = std::get<double>(cell);
  // JSON has no NaN or infinity; a missing value is null.
  return std::isfinite(number) ? ShortestDouble(number) : "null";
}

}  // namespace

TidyTable RunTable(const std::vector<v1::Run>& runs) {
  std::vector<const v1::Run*> pointers;
  for (const v1::Run& run : runs) pointers.push_back(&run);
  const auto overrides = OverrideColumns(pointers, FixedColumns());
  TidyTable table;
  for (const char* name : kRunColumnsBefore) table.columns.push_back(name);
  for (const auto& [key, column] : overrides) table.columns.push_back(column);
  for (const char* name : kRunColumnsAfter) table.columns.push_back(name);
  for (const v1::Run& run : runs) {
    std::vector<Cell> row = {run.id(), int64_t{run.index()}, services::RunStateName(run.state())};
    AppendOverrides(run, overrides, &row);
    const v1::RunRecord& record = run.record();
    const double tokens = record.tokens() > 0 ? record.tokens() : run.tokens();
    row.insert(row.end(), {record.n_params(), record.n_params_total(), tokens, record.flops(),
                           record.flops_per_token(), run.train_loss(), run.val_loss(),
                           run.energy().energy_j(), int64_t{run.attempt()}});
    table.rows.push_back(std::move(row));
  }
  return table;
}

TidyTable PointTable(
    const std::vector<std::pair<std::string, v1::GetSweepCurvesResponse>>& curves_by_metric) {
  std::vector<const v1::Run*> runs;
  for (const auto& [metric, curves] : curves_by_metric) {
    for (const v1::RunCurve& curve : curves.curves()) runs.push_back(&curve.run());
  }
  const auto overrides = OverrideColumns(runs, FixedColumns());
  TidyTable table;
  for (const char* name : kPointColumns) table.columns.push_back(name);
  for (const auto& [key, column] : overrides) table.columns.push_back(column);
  for (const auto& [metric, curves] : curves_by_metric) {
    for (const v1::RunCurve& curve : curves.curves()) {
      for (const v1::MetricPoint& point : curve.points()) {
        // A curve holds the run's latest attempt only.
        std::vector<Cell> row = {curve.run().id(),
                                 int64_t{curve.run().attempt()},
                                 point.step(),
                                 point.tokens(),
                                 point.name().empty() ? metric : point.name(),
                                 point.value(),
                                 point.wall_time_s()};
        AppendOverrides(curve.run(), overrides, &row);
        table.rows.push_back(std::move(row));
      }
    }
  }
  return table;
}

void WriteCsv(std::ostream& out, const TidyTable& table) {
  std::string line;
  for (size_t col = 0; col < table.columns.size(); ++col) {
    absl::StrAppend(&line, col > 0 ? "," : "", CsvField(table.columns[col]));
  }
  out << line << "\n";
  for (const std::vector<Cell>& row : table.rows) {
    line.clear();
    for (size_t col = 0; col < row.size(); ++col) {
      absl::StrAppend(&line, col > 0 ? "," : "", CsvCell(row[col]));
    }
    out << line << "\n";
  }
}

void WriteJson(std::ostream& out, const TidyTable& table) {
  std::vector<std::string> keys;
  for (const std::string& column : table.columns) keys.push_back(JsonString(column));
  out << "[";
  for (size_t row_idx = 0; row_idx < table.rows.size(); ++row_idx) {
    const std::vector<Cell>& row = table.rows[row_idx];
    std::string line = row_idx > 0 ? ",\n{" : "\n{";
    for (size_t col = 0; col < row.size() && col < keys.size(); ++col) {
      absl::StrAppend(&line, col > 0 ? ", " : "", keys[col], ": ", JsonCell(row[col]));
    }
    out << line << "}";
  }
  out << (table.rows.empty() ? "]\n" : "\n]\n");
}

std::string CsvField(absl::string_view text) {
  const bool quote = text.find_first_of(",\"\r\n") != absl::string_view::npos ||
                     (!text.empty() && (text.front() == ' ' || text.front() == '\t' ||
                                        text.back() == ' ' || text.back() == '\t'));
  if (!quote) return std::string(text);
  std::string field = "\"";
  for (char c : text) {
    if (c == '"') field += '"';
    field += c;
  }
  field += '"';
  return field;
}

std::string JsonString(absl::string_view text) {
  std::string literal = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        literal += "\\\"";
        break;
      case '\\':
        literal += "\\\\";
        break;
      case '\n':
        literal += "\\n";
        break;
      case '\r':
        literal += "\\r";
        break;
      case '\t':
        literal += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&literal, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          literal += c;  // UTF-8 passes through; protobuf strings are valid UTF-8
        }
    }
  }
  literal += '"';
  return literal;
}

std::string ShortestDouble(double value) {
  if (std::isnan(value)) return "nan";
  for (int precision = 15; precision < 17; ++precision) {
    std::string text = absl::StrFormat("%.*g", precision, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.17g", value);
}

}  // namespace scalelab::cli
