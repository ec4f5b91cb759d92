// The CSV reader of rl_predictor.h: sft_run, target, then one column per proxy.
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "services/analysis/internal/csv_fields.h"
#include "services/analysis/rl_predictor.h"

namespace scalelab::analysis {

absl::StatusOr<ProxyTable> ParseProxyTableCsv(absl::string_view text, absl::string_view source) {
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);  // UTF-8 byte-order mark
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  auto where = [&](size_t line_idx) { return absl::StrCat(source, ":", line_idx + 1, ": "); };

  std::vector<std::string> header;
  size_t line_idx = 0;
  for (; line_idx < lines.size(); ++line_idx) {
    absl::ConsumeSuffix(&lines[line_idx], "\r");
    if (absl::StripAsciiWhitespace(lines[line_idx]).empty()) continue;
    std::optional<std::vector<std::string>> fields = internal::SplitCsvFields(lines[line_idx], ',');
    if (!fields) {
      return absl::InvalidArgumentError(absl::StrCat(where(line_idx), "unterminated quote"));
    }
    header = *std::move(fields);
    break;
  }
  if (header.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": no header row (expected sft_run, target, then one column per proxy)"));
  }
  const size_t header_line = line_idx++;

  ProxyTable table;
  int label_col = -1, target_col = -1;
  std::vector<size_t> proxy_cols;
  for (size_t column = 0; column < header.size(); ++column) {
    const std::string name(absl::StripAsciiWhitespace(header[column]));
    for (size_t earlier = 0; earlier < column; ++earlier) {
      if (absl::StripAsciiWhitespace(header[earlier]) == name) {
        return absl::InvalidArgumentError(
            absl::StrCat(where(header_line), "column \"", name, "\" appears twice in the header"));
      }
    }
    if (name == "sft_run") {
      label_col = static_cast<int>(column);
    } else if (name == "target") {
      target_col = static_cast<int>(column);
    } else if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(header_line), "column ", column + 1, " has no name"));
    } else {
      proxy_cols.push_back(column);
      table.proxy_names.push_back(name);
    }
  }
  if (label_col < 0 || target_col < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where(header_line), "no \"", label_col < 0 ? "sft_run" : "target",
                     "\" column (expected sft_run, target, then one column per proxy)"));
  }
  if (proxy_cols.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        where(header_line), "no proxy column (expected sft_run, target, then one per proxy)"));
  }

  for (; line_idx < lines.size(); ++line_idx) {
    absl::string_view line = lines[line_idx];
    absl::ConsumeSuffix(&line, "\r");
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    std::optional<std::vector<std::string>> fields = internal::SplitCsvFields(line, ',');
    if (!fields) {
      return absl::InvalidArgumentError(absl::StrCat(where(line_idx), "unterminated quote"));
    }
    if (fields->size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(where(line_idx), "expected ", header.size(),
                                                     " fields (as the header), got ",
                                                     fields->size()));
    }
    auto number = [&](size_t column, double* out) -> absl::Status {
      const std::string& field = (*fields)[column];
      if (absl::SimpleAtod(absl::StripAsciiWhitespace(field), out) && std::isfinite(*out)) {
        return absl::OkStatus();
      }
      return absl::InvalidArgumentError(
          absl::StrCat(where(line_idx), "column \"", absl::StripAsciiWhitespace(header[column]),
                       "\": expected a finite number, got ", internal::QuotedForError(field)));
    };
    ProxyPoint point;
    point.label = std::string(absl::StripAsciiWhitespace((*fields)[label_col]));
    if (point.label.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(line_idx), "column \"sft_run\": expected a run label, got \"\""));
    }
    if (absl::Status status = number(target_col, &point.target); !status.ok()) return status;
    point.proxies.resize(proxy_cols.size());
    for (size_t proxy = 0; proxy < proxy_cols.size(); ++proxy) {
      if (absl::Status status = number(proxy_cols[proxy], &point.proxies[proxy]); !status.ok()) {
        return status;
      }
    }
    table.points.push_back(std::move(point));
  }
  return table;
}

absl::StatusOr<ProxyTable> ReadProxyTableCsv(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return absl::DataLossError(absl::StrCat(path, ": read failed"));
  return ParseProxyTableCsv(text.str(), path);
}

}  // namespace scalelab::analysis
