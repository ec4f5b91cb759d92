#include "services/analysis/csv_points.h"

#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/analysis/internal/csv_fields.h"

namespace scalelab::analysis {
namespace {

using internal::QuotedForError;
using internal::SplitCsvFields;

// Index of the first alias present in the header, or -1.
int FindColumn(const std::vector<std::string>& header, const std::vector<std::string>& aliases) {
  for (const std::string& alias : aliases) {
    for (size_t column = 0; column < header.size(); ++column) {
      if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(header[column]),
                                 absl::StripAsciiWhitespace(alias))) {
        return static_cast<int>(column);
      }
    }
  }
  return -1;
}

}  // namespace

absl::Status CsvOptions::Validate() const {
  if (columns.loss.empty()) {
    return absl::InvalidArgumentError("csv.columns.loss: expected at least one column name");
  }
  if (delimiter == '"' || delimiter == '\n' || delimiter == '\r') {
    return absl::InvalidArgumentError(
        absl::StrCat("csv.delimiter: expected a character other than a quote or a newline, got ",
                     QuotedForError(absl::string_view(&delimiter, 1))));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ScalingPoint>> ParseScalingPointsCsv(absl::string_view text,
                                                                absl::string_view source,
                                                                const CsvOptions& options) {
  if (auto status = options.Validate(); !status.ok()) return status;
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte-order mark
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');

  std::vector<std::string> header;
  size_t line_idx = 0;
  auto where = [&](size_t idx) { return absl::StrCat(source, ":", idx + 1, ": "); };
  for (; line_idx < lines.size(); ++line_idx) {
    absl::ConsumeSuffix(&lines[line_idx], "\r");
    if (absl::StripAsciiWhitespace(lines[line_idx]).empty()) continue;
    std::optional<std::vector<std::string>> fields =
        SplitCsvFields(lines[line_idx], options.delimiter);
    if (!fields)
      return absl::InvalidArgumentError(absl::StrCat(where(line_idx), "unterminated quote"));
    header = *std::move(fields);
    break;
  }
  if (header.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": no header row"));
  const size_t header_line = line_idx++;

  const CsvColumns& names = options.columns;
  const int n_col = FindColumn(header, names.n_params);
  const int d_col = FindColumn(header, names.tokens);
  const int c_col = FindColumn(header, names.flops);
  const int loss_col = FindColumn(header, names.loss);
  const int run_col = FindColumn(header, names.run_id);
  auto aliases = [](const std::vector<std::string>& list) {
    return absl::StrCat("\"", absl::StrJoin(list, "\" or \""), "\"");
  };
  if (loss_col < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(header_line), "no loss column (", aliases(names.loss), ")"));
  }
  const int known = (n_col >= 0) + (d_col >= 0) + (c_col >= 0);
  if (known < 2 && c_col < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(header_line), "expected two of N (", aliases(names.n_params), "), D (",
                     aliases(names.tokens), ") and C (", aliases(names.flops), "), or C alone"));
  }

  std::vector<ScalingPoint> points;
  for (; line_idx < lines.size(); ++line_idx) {
    absl::string_view line = lines[line_idx];
    absl::ConsumeSuffix(&line, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::optional<std::vector<std::string>> fields = SplitCsvFields(line, options.delimiter);
    if (!fields) {
      return absl::InvalidArgumentError(absl::StrCat(where(line_idx), "unterminated quote"));
    }
    if (fields->size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(where(line_idx), "expected ", header.size(),
                                                     " fields (as the header), got ",
                                                     fields->size()));
    }
    auto number = [&](int column, double* out) -> absl::Status {
      if (column < 0) return absl::OkStatus();
      const std::string& field = (*fields)[column];
      if (absl::SimpleAtod(field, out) && std::isfinite(*out) && *out > 0) {
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(absl::StrCat(where(line_idx), "column \"", header[column],
                                                     "\": expected a positive number, got ",
                                                     QuotedForError(field)));
    };
    if (options.skip_incomplete_rows) {
      bool incomplete = false;
      for (int column : {n_col, d_col, c_col, loss_col}) {
        if (column < 0) continue;
        const absl::string_view field = absl::StripAsciiWhitespace((*fields)[column]);
        double value = 0;
        incomplete = incomplete || field.empty() || (absl::SimpleAtod(field, &value) && value == 0);
      }
      if (incomplete) {
        if (options.skipped_lines != nullptr) {
          options.skipped_lines->push_back(static_cast<int>(line_idx) + 1);
        }
        continue;
      }
    }
    ScalingPoint point;
    for (const auto& [column, out] :
         {std::pair(n_col, &point.n_params), std::pair(d_col, &point.tokens),
          std::pair(c_col, &point.flops), std::pair(loss_col, &point.loss)}) {
      if (auto status = number(column, out); !status.ok()) return status;
    }
    if (run_col >= 0) {
      const std::string& field = (*fields)[run_col];
      if (!absl::SimpleAtoi(field, &point.run_id)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(line_idx), "column \"", header[run_col],
                         "\": expected an integer, got ", QuotedForError(field)));
      }
    }
    // C = 6 N D fills whichever one is missing.
    if (d_col < 0 && n_col >= 0 && c_col >= 0) point.tokens = point.flops / (6 * point.n_params);
    if (c_col < 0) point.flops = 6 * point.n_params * point.tokens;
    if (n_col < 0 && d_col >= 0 && c_col >= 0) point.n_params = point.flops / (6 * point.tokens);
    points.push_back(point);
  }
  return points;
}

absl::StatusOr<std::vector<ScalingPoint>> ReadScalingPointsCsv(const std::string& path,
                                                               const CsvOptions& options) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return ParseScalingPointsCsv(text.str(), path, options);
}

}  // namespace scalelab::analysis
