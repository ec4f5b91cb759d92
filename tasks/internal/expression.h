// Template text for eval suites: "{a}+{b}=" with slots, and "{a+b}" with integer expressions.
#ifndef SCALELAB_TASKS_INTERNAL_EXPRESSION_H_
#define SCALELAB_TASKS_INTERNAL_EXPRESSION_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace scalelab::tasks::internal {

using SlotValues = std::map<std::string, std::string, std::less<>>;

// An integer expression over slots: decimal literals, slot names, + - * / % (truncating
// division, as C++), unary minus, parentheses, min(...), max(...), abs(x). InvalidArgument
// naming the expression and what was wrong (unknown slot, a slot that is not an integer,
// division by zero, overflow of 64 bits, a syntax error with its offset).
absl::StatusOr<int64_t> EvaluateExpression(absl::string_view expression, const SlotValues& slots);

// `text` with each "{...}" replaced: a bare slot name by the slot's value (any text), anything
// else by EvaluateExpression's result. "{{" and "}}" are literal braces.
absl::StatusOr<std::string> ExpandTemplate(absl::string_view text, const SlotValues& slots);

// The slot names a template text uses (bare names and names inside expressions).
absl::StatusOr<std::vector<std::string>> SlotsUsed(absl::string_view text);

}  // namespace scalelab::tasks::internal

#endif  // SCALELAB_TASKS_INTERNAL_EXPRESSION_H_
