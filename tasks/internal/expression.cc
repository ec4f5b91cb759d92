#include "tasks/internal/expression.h"

#include <cctype>
#include <cstdlib>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace scalelab::tasks::internal {
namespace {

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool IsBareName(absl::string_view text) {
  if (text.empty() || !IsNameStart(text[0])) return false;
  for (char c : text) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

// Recursive descent over:
//   sum     := product (('+' | '-') product)*
//   product := unary (('*' | '/' | '%') unary)*
//   unary   := '-' unary | primary
//   primary := integer | name | name '(' sum (',' sum)* ')' | '(' sum ')'
// With `slots` null it only collects the names it meets (SlotsUsed).
class Parser {
 public:
  Parser(absl::string_view text, const SlotValues* slots, std::vector<std::string>* names)
      : text_(text), slots_(slots), names_(names) {}

  absl::StatusOr<int64_t> Parse() {
    absl::StatusOr<int64_t> value = Sum();
    if (!value.ok()) return value;
    SkipSpace();
    if (pos_ != text_.size()) return Error("unexpected text");
    return value;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("expression \"", text_.substr(0, 80), "\": ", what, " at offset ", pos_));
  }
  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool Accept(char c) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  absl::StatusOr<int64_t> Checked(bool overflow, int64_t value) const {
    if (overflow) return Error("the value overflows 64 bits");
    return value;
  }

  absl::StatusOr<int64_t> Sum() {
    absl::StatusOr<int64_t> left = Product();
    while (left.ok()) {
      int64_t result = 0;
      if (Accept('+')) {
        absl::StatusOr<int64_t> right = Product();
        if (!right.ok()) return right;
        const bool overflow = __builtin_add_overflow(*left, *right, &result);
        left = Checked(overflow, result);
      } else if (Accept('-')) {
        absl::StatusOr<int64_t> right = Product();
        if (!right.ok()) return right;
        const bool overflow = __builtin_sub_overflow(*left, *right, &result);
        left = Checked(overflow, result);
      } else {
        break;
      }
    }
    return left;
  }

  absl::StatusOr<int64_t> Product() {
    absl::StatusOr<int64_t> left = Unary();
    while (left.ok()) {
      char op = 0;
      for (char candidate : {'*', '/', '%'}) {
        if (Accept(candidate)) {
          op = candidate;
          break;
        }
      }
      if (op == 0) break;
      absl::StatusOr<int64_t> right = Unary();
      if (!right.ok()) return right;
      int64_t result = 0;
      if (op == '*') {
        const bool overflow = __builtin_mul_overflow(*left, *right, &result);
        left = Checked(overflow, result);
      } else if (slots_ == nullptr) {
        left = 1;  // only collecting names
      } else if (*right == 0) {
        return Error("division by zero");
      } else if (*right == -1 && *left == INT64_MIN) {
        return Error("the value overflows 64 bits");
      } else {
        left = op == '/' ? *left / *right : *left % *right;
      }
    }
    return left;
  }

  absl::StatusOr<int64_t> Unary() {
    if (Accept('-')) {
      absl::StatusOr<int64_t> value = Unary();
      if (!value.ok()) return value;
      return Checked(*value == INT64_MIN, -*value);
    }
    return Primary();
  }

  absl::StatusOr<int64_t> Primary() {
    SkipSpace();
    if (Accept('(')) {
      absl::StatusOr<int64_t> value = Sum();
      if (!value.ok()) return value;
      if (!Accept(')')) return Error("expected ')'");
      return value;
    }
    if (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      const size_t start = pos_;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
      int64_t value = 0;
      if (!absl::SimpleAtoi(text_.substr(start, pos_ - start), &value)) {
        return Error("the literal overflows 64 bits");
      }
      return value;
    }
    if (pos_ < text_.size() && IsNameStart(text_[pos_])) {
      const size_t start = pos_;
      while (pos_ < text_.size() && IsNameChar(text_[pos_])) ++pos_;
      const std::string name(text_.substr(start, pos_ - start));
      if (Accept('(')) return Call(name);
      return Slot(name);
    }
    return Error("expected a number, a slot name or '('");
  }

  absl::StatusOr<int64_t> Call(const std::string& name) {
    if (name != "min" && name != "max" && name != "abs") {
      return Error(absl::StrCat("unknown function ", name, " (known: min, max, abs)"));
    }
    std::vector<int64_t> args;
    do {
      absl::StatusOr<int64_t> arg = Sum();
      if (!arg.ok()) return arg;
      args.push_back(*arg);
    } while (Accept(','));
    if (!Accept(')')) return Error("expected ')' or ','");
    if (name == "abs") {
      if (args.size() != 1) return Error("abs takes one argument");
      return Checked(args[0] == INT64_MIN, std::llabs(args[0]));
    }
    int64_t best = args[0];
    for (int64_t arg : args) best = name == "min" ? std::min(best, arg) : std::max(best, arg);
    return best;
  }

  absl::StatusOr<int64_t> Slot(const std::string& name) {
    if (names_ != nullptr) names_->push_back(name);
    if (slots_ == nullptr) return 1;
    auto it = slots_->find(name);
    if (it == slots_->end()) return Error(absl::StrCat("unknown slot ", name));
    int64_t value = 0;
    if (!absl::SimpleAtoi(it->second, &value)) {
      return Error(
          absl::StrCat("slot ", name, " is \"", it->second.substr(0, 80), "\", not an integer"));
    }
    return value;
  }

  absl::string_view text_;
  const SlotValues* slots_;
  std::vector<std::string>* names_;
  size_t pos_ = 0;
};

// Calls `on_field(inner)` for each "{inner}" and `on_text(literal)` for the text between.
template <typename OnText, typename OnField>
absl::Status WalkTemplate(absl::string_view text, OnText on_text, OnField on_field) {
  size_t pos = 0;
  while (pos < text.size()) {
    const char c = text[pos];
    if ((c == '{' || c == '}') && pos + 1 < text.size() && text[pos + 1] == c) {
      on_text(absl::string_view(&text[pos], 1));
      pos += 2;
      continue;
    }
    if (c == '}') {
      return absl::InvalidArgumentError(absl::StrCat("template \"", text.substr(0, 80),
                                                     "\": unmatched '}' at offset ", pos,
                                                     " (write }} for a literal brace)"));
    }
    if (c != '{') {
      on_text(text.substr(pos, 1));
      ++pos;
      continue;
    }
    const size_t close = text.find('}', pos + 1);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("template \"", text.substr(0, 80),
                                                     "\": unmatched '{' at offset ", pos,
                                                     " (write {{ for a literal brace)"));
    }
    if (auto status = on_field(text.substr(pos + 1, close - pos - 1)); !status.ok()) return status;
    pos = close + 1;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> EvaluateExpression(absl::string_view expression, const SlotValues& slots) {
  return Parser(expression, &slots, nullptr).Parse();
}

absl::StatusOr<std::string> ExpandTemplate(absl::string_view text, const SlotValues& slots) {
  std::string out;
  absl::Status status = WalkTemplate(
      text, [&](absl::string_view literal) { out.append(literal.data(), literal.size()); },
      [&](absl::string_view field) -> absl::Status {
        if (IsBareName(field)) {
          auto it = slots.find(field);
          if (it == slots.end()) {
            return absl::InvalidArgumentError(
                absl::StrCat("template \"", text.substr(0, 80), "\": unknown slot ", field));
          }
          out.append(it->second);
          return absl::OkStatus();
        }
        absl::StatusOr<int64_t> value = EvaluateExpression(field, slots);
        if (!value.ok()) return value.status();
        absl::StrAppend(&out, *value);
        return absl::OkStatus();
      });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<std::string>> SlotsUsed(absl::string_view text) {
  std::vector<std::string> names;
  absl::Status status = WalkTemplate(
      text, [](absl::string_view) {},
      [&](absl::string_view field) -> absl::Status {
        if (IsBareName(field)) {
          names.emplace_back(field);
          return absl::OkStatus();
        }
        return Parser(field, nullptr, &names).Parse().status();
      });
  if (!status.ok()) return status;
  return names;
}

}  // namespace scalelab::tasks::internal
