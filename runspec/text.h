// Text helpers for error messages that echo user input (runspec/ and the manifest parser).
#ifndef SCALELAB_RUNSPEC_TEXT_H_
#define SCALELAB_RUNSPEC_TEXT_H_

#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace scalelab::runspec {

// The public API takes std::string_view; this absl build has its own string_view type.
inline absl::string_view Absl(std::string_view text) {
  return absl::string_view(text.data(), text.size());
}

// Quoted and C-escaped, for echoing text back in an error. Long text is cut to `kEchoLimit`
// characters and the rest counted, so a 2 MB value never comes back as a 2 MB message.
inline constexpr size_t kEchoLimit = 80;
inline std::string Quoted(absl::string_view text) {
  if (text.size() <= kEchoLimit) return absl::StrCat("\"", absl::CHexEscape(text), "\"");
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kEchoLimit)), "\"... (",
                      text.size() - kEchoLimit, " more bytes)");
}

// `text` itself when short, else its first kEchoLimit bytes and a count of the rest (no quotes).
inline std::string Capped(absl::string_view text) {
  if (text.size() <= kEchoLimit) return std::string(text);
  return absl::StrCat(text.substr(0, kEchoLimit), "... (", text.size() - kEchoLimit,
                      " more bytes)");
}

inline std::string JoinKey(absl::string_view parent, absl::string_view child) {
  if (parent.empty()) return std::string(child);
  if (child.empty()) return std::string(parent);
  return absl::StrCat(parent, ".", child);
}

}  // namespace scalelab::runspec

#endif  // SCALELAB_RUNSPEC_TEXT_H_
