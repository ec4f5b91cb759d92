#include "model/train_options.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace scalelab::model {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Cosine decay ends at this fraction of the peak rate rather than zero, so the last steps still
// learn something; 10% is the usual choice in scaling-law work.
constexpr double kFinalLrFraction = 0.1;

template <typename Value>
absl::Status Invalid(absl::string_view flag, const Value& value, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", value, ": expected ", expected));
}

bool IsValidSourceName(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

// absl::StrCat prints doubles with 6 significant digits, which would make an error about
// --tokens=1e-07 unreadable; %g keeps them short and exact enough to recognize.
std::string Num(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.9g", value);
  return buffer;
}

}  // namespace

int64_t TrainOptions::NumSteps() const {
  return static_cast<int64_t>(std::ceil(tokens / static_cast<double>(batch_tokens)));
}

absl::Status TrainOptions::Validate() const {
  if (sources.empty()) {
    return absl::InvalidArgumentError(
        "--data_sources: expected at least one name=/dir entry, got none");
  }
  std::set<std::string> names;
  double weight_sum = 0;
  for (const DataSource& source : sources) {
    if (!IsValidSourceName(source.name)) {
      return Invalid("data_sources", source.name + "=" + source.dir,
                     "a source name made of letters, digits, '_', '.' or '-'");
    }
    if (!names.insert(source.name).second) {
      return Invalid("data_sources", source.name, "each source name once");
    }
    if (source.dir.empty()) {
      return Invalid("data_sources", source.name + "=", "a folder path after '='");
    }
    if (!std::isfinite(source.weight) || source.weight < 0) {
      return Invalid("data_mixture", source.name + "=" + Num(source.weight),
                     "a finite weight >= 0");
    }
    weight_sum += source.weight;
  }
  if (!(weight_sum > 0)) {
    return absl::InvalidArgumentError("--data_mixture: expected weights with a positive sum");
  }
  if (model_family != "transformer") {
    return Invalid("model_family", model_family, "\"transformer\" (the only family so far)");
  }
  if (d_model <= 0) return Invalid("d_model", d_model, "a positive integer");
  if (n_layers <= 0) return Invalid("n_layers", n_layers, "a positive integer");
  if (n_heads <= 0) return Invalid("n_heads", n_heads, "a positive integer");
  if (d_model % n_heads != 0) {
    return Invalid("n_heads", n_heads, absl::StrCat("a divisor of --d_model=", d_model));
  }
  if (seq_len <= 0) return Invalid("seq_len", seq_len, "a positive integer");
  if (d_ff < 0) return Invalid("d_ff", d_ff, "a positive integer, or 0 for 4 * d_model");
  if (vocab_size < 256) {
    return Invalid("vocab_size", vocab_size, "at least 256 (the data is one byte per token)");
  }
  if (!std::isfinite(tokens) || tokens < 1) {
    return Invalid("tokens", Num(tokens), "a finite number of training tokens >= 1");
  }
  if (batch_tokens <= 0) return Invalid("batch_tokens", batch_tokens, "a positive integer");
  if (batch_tokens % seq_len != 0) {
    return Invalid("batch_tokens", batch_tokens,
                   absl::StrCat("a multiple of --seq_len=", seq_len,
                                " (batch size = batch_tokens / seq_len)"));
  }
  if (!std::isfinite(lr) || lr <= 0) return Invalid("lr", Num(lr), "a finite rate > 0");
  if (!std::isfinite(warmup) || warmup < 0 || warmup > 1) {
    return Invalid("warmup", Num(warmup), "a fraction of the steps in [0, 1]");
  }
  if (!std::isfinite(weight_decay) || weight_decay < 0) {
    return Invalid("weight_decay", Num(weight_decay), "a finite value >= 0");
  }
  if (!std::isfinite(eval_every_tokens) || eval_every_tokens <= 0) {
    return Invalid("eval_every_tokens", Num(eval_every_tokens), "a finite token count > 0");
  }
  if (val_tokens <= 0) return Invalid("val_tokens", val_tokens, "a positive integer");
  if (threads <= 0) return Invalid("threads", threads, "a positive integer");
  if (device != "cpu" && device != "cuda") return Invalid("device", device, "\"cpu\" or \"cuda\"");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ParseKeyValueList(
    absl::string_view flag_name, absl::string_view text) {
  std::vector<std::pair<std::string, std::string>> pairs;
  if (absl::StripAsciiWhitespace(text).empty()) return pairs;
  std::set<std::string, std::less<>> seen;
  int entry_idx = 0;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    ++entry_idx;
    const size_t eq = entry.find('=');
    absl::string_view key = absl::StripAsciiWhitespace(entry.substr(0, eq));
    absl::string_view value =
        eq == absl::string_view::npos ? "" : absl::StripAsciiWhitespace(entry.substr(eq + 1));
    if (eq == absl::string_view::npos || key.empty() || value.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag_name, "=", text, ": entry ",
                                                     entry_idx, " \"", entry,
                                                     "\": expected name=value"));
    }
    if (!seen.emplace(key).second) {
      return absl::InvalidArgumentError(absl::StrCat("--", flag_name, "=", text, ": name \"", key,
                                                     "\" appears twice; expected each once"));
    }
    pairs.emplace_back(std::string(key), std::string(value));
  }
  return pairs;
}

absl::StatusOr<std::vector<DataSource>> ParseDataSources(absl::string_view text) {
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> pairs =
      ParseKeyValueList("data_sources", text);
  if (!pairs.ok()) return pairs.status();
  std::vector<DataSource> sources;
  for (auto& [name, dir] : *pairs) {
    sources.push_back(DataSource{name, dir, 1.0});
  }
  return sources;
}

absl::Status ApplyDataMixture(absl::string_view text, std::vector<DataSource>& sources) {
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> pairs =
      ParseKeyValueList("data_mixture", text);
  if (!pairs.ok()) return pairs.status();
  if (pairs->empty()) return absl::OkStatus();
  for (const auto& [name, value] : *pairs) {
    const std::string& wanted = name;  // Lambdas cannot capture structured bindings in C++17.
    auto source = std::find_if(sources.begin(), sources.end(),
                               [&wanted](const DataSource& s) { return s.name == wanted; });
    if (source == sources.end()) {
      return Invalid("data_mixture", text,
                     absl::StrCat("names from --data_sources, but \"", name, "\" is not one"));
    }
    double weight = 0;
    if (!absl::SimpleAtod(value, &weight) || !std::isfinite(weight) || weight < 0) {
      return Invalid("data_mixture", text,
                     absl::StrCat("a finite weight >= 0 for \"", name, "\", got \"", value, "\""));
    }
    source->weight = weight;
  }
  for (const DataSource& source : sources) {
    auto given = std::find_if(pairs->begin(), pairs->end(),
                              [&](const auto& pair) { return pair.first == source.name; });
    if (given == pairs->end()) {
      return Invalid("data_mixture", text,
                     absl::StrCat("a weight for every source, but \"", source.name, "\" has none"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<LrSchedule> ParseLrSchedule(absl::string_view text) {
  if (text == "cosine") return LrSchedule::kCosine;
  if (text == "constant") return LrSchedule::kConstant;
  return Invalid("schedule", text, "\"cosine\" or \"constant\"");
}

absl::string_view LrScheduleName(LrSchedule schedule) {
  return schedule == LrSchedule::kCosine ? "cosine" : "constant";
}

double LearningRateAt(int64_t step, int64_t num_steps, double peak_lr, double warmup,
                      LrSchedule schedule) {
  const int64_t warmup_steps = std::llround(warmup * static_cast<double>(num_steps));
  if (step < warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (schedule == LrSchedule::kConstant) return peak_lr;
  const int64_t decay_steps = num_steps - 1 - warmup_steps;
  const double progress =
      decay_steps <= 0
          ? 1.0
          : std::clamp(static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps),
                       0.0, 1.0);
  const double min_lr = kFinalLrFraction * peak_lr;
  return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(kPi * progress));
}

}  // namespace scalelab::model
