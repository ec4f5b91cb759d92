#include "services/cli/format.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "services/common/run_state.h"

namespace scalelab::cli {
namespace {

using services::RunStateName;
using services::SweepStateName;

std::string Tokens(double tokens) {
  if (tokens >= 1e9) return absl::StrFormat("%.2fG", tokens / 1e9);
  if (tokens >= 1e6) return absl::StrFormat("%.2fM", tokens / 1e6);
  if (tokens >= 1e3) return absl::StrFormat("%.1fk", tokens / 1e3);
  return absl::StrFormat("%.0f", tokens);
}

std::string ToJson(const google::protobuf::Message& message, bool whitespace) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = whitespace;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!whitespace) return out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool IsContinuation(unsigned char byte, unsigned char low = 0x80, unsigned char high = 0xBF) {
  return byte >= low && byte <= high;
}

// Length of the well-formed UTF-8 sequence starting at text[pos] (Unicode 15, table 3-7), or 0.
size_t SequenceLength(absl::string_view text, size_t pos) {
  auto at = [&](size_t i) -> int {
    return pos + i < text.size() ? static_cast<unsigned char>(text[pos + i]) : -1;
  };
  const int lead = at(0);
  auto continues = [&](size_t i, unsigned char low = 0x80, unsigned char high = 0xBF) {
    const int byte = at(i);
    return byte >= 0 && IsContinuation(static_cast<unsigned char>(byte), low, high);
  };
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return continues(1) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    const unsigned char low = lead == 0xE0 ? 0xA0 : 0x80;   // no overlong forms
    const unsigned char high = lead == 0xED ? 0x9F : 0xBF;  // no UTF-16 surrogates
    return continues(1, low, high) && continues(2) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    const unsigned char low = lead == 0xF0 ? 0x90 : 0x80;   // no overlong forms
    const unsigned char high = lead == 0xF4 ? 0x8F : 0xBF;  // nothing above U+10FFFF
    return continues(1, low, high) && continues(2) && continues(3) ? 4 : 0;
  }
  return 0;
}

}  // namespace

std::string Loss(double value) { return std::isnan(value) ? "-" : absl::StrFormat("%.4f", value); }

std::string Overrides(const v1::Run& run) {
  std::vector<std::string> parts;
  std::map<std::string, std::string> sorted(run.overrides().begin(), run.overrides().end());
  for (const auto& [key, value] : sorted) parts.push_back(absl::StrCat(key, "=", value));
  return absl::StrJoin(parts, " ");
}

std::string Json(const google::protobuf::Message& message) { return ToJson(message, true); }

std::string JsonLine(const google::protobuf::Message& message) { return ToJson(message, false); }

void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, const std::string& indent) {
  std::vector<size_t> width(header.size());
  for (size_t col = 0; col < header.size(); ++col) width[col] = header[col].size();
  for (const auto& row : rows) {
    if (row.size() > width.size()) width.resize(row.size());
    for (size_t col = 0; col < row.size(); ++col)
      width[col] = std::max(width[col], row[col].size());
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line = indent;
    for (size_t col = 0; col < row.size(); ++col) {
      absl::StrAppend(&line, row[col]);
      if (col + 1 < row.size()) line.append(width[col] - row[col].size() + 2, ' ');
    }
    // Empty cells at the end of a row leave no trailing blanks.
    while (line.size() > indent.size() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  };
  if (!header.empty()) print_row(header);
  for (const auto& row : rows) print_row(row);
}

std::string Counts(const v1::Sweep& sweep) {
  std::vector<std::string> parts;
  std::map<std::string, int> sorted(sweep.runs_by_state().begin(), sweep.runs_by_state().end());
  for (const auto& [state, count] : sorted) parts.push_back(absl::StrCat(state, ":", count));
  return absl::StrJoin(parts, " ");
}

std::string SweepHeadline(const v1::Sweep& sweep) {
  return absl::StrCat("sweep ", sweep.id(), " ", sweep.name(), " (project ", sweep.project(),
                      "): ", SweepStateName(sweep.state()), ", ", Counts(sweep));
}

void PrintSweeps(std::ostream& out, const std::vector<v1::Sweep>& sweeps) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Sweep& sweep : sweeps) {
    rows.push_back({absl::StrCat(sweep.id()), sweep.name(), sweep.project(),
                    SweepStateName(sweep.state()), absl::StrCat(sweep.total_runs()),
                    Counts(sweep)});
  }
  PrintTable(out, {"SWEEP", "NAME", "PROJECT", "STATE", "RUNS", "BY_STATE"}, rows);
}

std::string StageOf(const v1::Run& run) {
  // Runs from a scheduler that predates pipelines carry no stage: they are all the main stage.
  return run.stage().empty() ? "main" : run.stage();
}

void PrintRuns(std::ostream& out, const std::vector<v1::Run>& runs) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Run& run : runs) {
    rows.push_back({absl::StrCat(run.id()), absl::StrCat(run.index()), StageOf(run),
                    run.parent_run_id() == 0 ? "-" : absl::StrCat(run.parent_run_id()),
                    RunStateName(run.state()), absl::StrCat(run.attempt()),
                    absl::StrCat(run.step()), Tokens(run.tokens()), Loss(run.train_loss()),
                    Loss(run.val_loss()), Overrides(run)});
  }
  PrintTable(out,
             {"RUN", "IDX", "STAGE", "PARENT", "STATE", "ATTEMPT", "STEP", "TOKENS", "TRAIN_LOSS",
              "VAL_LOSS", "OVERRIDES"},
             rows);
}

std::string ShowingNote(int64_t shown, int64_t total) {
  if (shown >= total) return "";
  return absl::StrCat("showing ", shown, " of ", total, " runs; --all lists every run");
}

std::string Bytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = -1;
  while (value >= 1024 && unit + 1 < 4) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

std::string Significant(double value, int digits) {
  if (std::isnan(value)) return "-";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  digits = std::max(digits, 1);
  // The exponent of the value as rounded to `digits` (0.099999 to 4 digits is 0.1000, not
  // 0.09999), read off printf's own rounding.
  std::string text = absl::StrFormat("%.*e", digits - 1, value);
  const size_t e = text.find('e');
  const int exponent = std::atoi(text.c_str() + e + 1);
  if (exponent >= -3 && exponent < 5) {
    return absl::StrFormat("%.*f", std::max(0, digits - 1 - exponent), value);
  }
  // "1.20e+19" -> "1.2e19": trailing mantissa zeros, the exponent's sign and zero padding go.
  std::string mantissa = text.substr(0, e);
  if (mantissa.find('.') != std::string::npos) {
    while (mantissa.back() == '0') mantissa.pop_back();
    if (mantissa.back() == '.') mantissa.pop_back();
  }
  return absl::StrCat(mantissa, "e", exponent);
}

std::string Short(double value) {
  std::string text = Significant(value, 4);
  if (text.find('.') == std::string::npos || text.find('e') != std::string::npos) return text;
  while (text.back() == '0') text.pop_back();
  if (text.back() == '.') text.pop_back();
  return text;
}

void PrintArtifacts(std::ostream& out, const std::vector<v1::Artifact>& artifacts) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Artifact& artifact : artifacts) {
    rows.push_back({absl::StrCat(artifact.id()), absl::StrCat(artifact.attempt()),
                    absl::StrCat(artifact.step()), artifact.kind(), Bytes(artifact.size_bytes()),
                    artifact.sha256().substr(0, 12), artifact.location()});
  }
  PrintTable(out, {"ARTIFACT", "ATTEMPT", "STEP", "KIND", "SIZE", "SHA256", "LOCATION"}, rows);
}

void PrintMetricsCsv(std::ostream& out, int64_t run_id, const v1::GetRunMetricsResponse& metrics) {
  out << "run_id,attempt,name,step,tokens,value,wall_time_s\n";
  for (const v1::MetricSeries& series : metrics.series()) {
    for (const v1::MetricPoint& point : series.points()) {
      out << absl::StrFormat("%d,%d,%s,%d,%.17g,%.17g,%.6f\n", run_id, series.attempt(),
                             series.name(), point.step(), point.tokens(), point.value(),
                             point.wall_time_s());
    }
  }
}

std::optional<Utf8Error> FindInvalidUtf8(absl::string_view text) {
  int line = 1;
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = SequenceLength(text, pos);
    if (length == 0) {
      return Utf8Error{pos, line, static_cast<unsigned char>(text[pos])};
    }
    if (text[pos] == '\n') ++line;
    pos += length;
  }
  return std::nullopt;
}

std::string ToValidUtf8(absl::string_view text) {
  std::string valid;
  valid.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = SequenceLength(text, pos);
    if (length == 0) {
      valid += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++pos;
    } else {
      valid.append(text.data() + pos, length);
      pos += length;
    }
  }
  return valid;
}

}  // namespace scalelab::cli
