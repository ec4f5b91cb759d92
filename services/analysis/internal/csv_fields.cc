#include "services/analysis/internal/csv_fields.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace scalelab::analysis::internal {

std::string QuotedForError(absl::string_view text) {
  constexpr size_t kEchoLimit = 80;
  if (text.size() <= kEchoLimit) return absl::StrCat("\"", absl::CHexEscape(text), "\"");
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kEchoLimit)), "\"... (",
                      text.size() - kEchoLimit, " more bytes)");
}

std::optional<std::vector<std::string>> SplitCsvFields(absl::string_view line, char delimiter) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t pos = 0; pos < line.size(); ++pos) {
    const char c = line[pos];
    if (quoted) {
      if (c != '"') {
        fields.back().push_back(c);
      } else if (pos + 1 < line.size() && line[pos + 1] == '"') {
        fields.back().push_back('"');
        ++pos;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == delimiter) {
      fields.emplace_back();
    } else {
      fields.back().push_back(c);
    }
  }
  if (quoted) return std::nullopt;
  return fields;
}

}  // namespace scalelab::analysis::internal
