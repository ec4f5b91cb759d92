#include "tasks/problem.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace scalelab::tasks {

absl::string_view SplitName(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kHeldOut:
      return "held_out";
    case Split::kTest:
      return "test";
  }
  return "unknown";
}

absl::StatusOr<Split> ParseSplit(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(text.data(), text.size()));
  if (lower == "train") return Split::kTrain;
  if (lower == "held_out" || lower == "heldout" || lower == "held-out") return Split::kHeldOut;
  if (lower == "test") return Split::kTest;
  return absl::InvalidArgumentError(absl::StrCat(
      "split: expected one of train, held_out, test, got \"", lower.substr(0, 80), "\""));
}

std::string CanonicalText(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char c : text) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  }
  return out;
}

uint64_t StableHash(absl::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

absl::Status SplitFractions::Validate() const {
  if (!(train >= 0 && train <= 1) || !(held_out >= 0 && held_out <= 1) ||
      !(train + held_out <= 1 + 1e-12)) {
    return absl::InvalidArgumentError(
        absl::StrCat("split fractions: expected train and held_out in [0, 1] with train + "
                     "held_out <= 1, got train=",
                     train, " held_out=", held_out));
  }
  return absl::OkStatus();
}

Split SplitOfQuestion(absl::string_view question, const SplitFractions& fractions) {
  // FNV-1a's low bits mix poorly for short inputs; a final avalanche (SplitMix64's) spreads them
  // before the top 53 bits become a uniform double.
  uint64_t z = StableHash(CanonicalText(question));
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53;
  if (u < fractions.train) return Split::kTrain;
  if (u < fractions.train + fractions.held_out) return Split::kHeldOut;
  return Split::kTest;
}

}  // namespace scalelab::tasks
