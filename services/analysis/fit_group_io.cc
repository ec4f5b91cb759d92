#include "services/analysis/fit_group_io.h"

#include <cmath>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace scalelab::analysis {
namespace {

std::string Number(double value) {
  if (std::isnan(value)) return "nan";
  return absl::StrFormat("%.17g", value);
}

std::string Numbers(const std::vector<double>& values) {
  std::vector<std::string> texts;
  texts.reserve(values.size());
  for (double value : values) texts.push_back(Number(value));
  return absl::StrJoin(texts, " ");
}

absl::StatusOr<double> ParseNumber(absl::string_view text, int line) {
  if (text == "nan") return std::numeric_limits<double>::quiet_NaN();
  double value = 0;
  if (!absl::SimpleAtod(text, &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fit group line ", line, ": expected a number, got \"", text, "\""));
  }
  return value;
}

absl::Status ParseNumbers(const std::vector<absl::string_view>& words, size_t from, int line,
                          std::vector<double>* out) {
  for (size_t idx = from; idx < words.size(); ++idx) {
    auto value = ParseNumber(words[idx], line);
    if (!value.ok()) return value.status();
    out->push_back(*value);
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeFitGroupRequest(const FitGroupRequest& request) {
  std::string text = absl::StrCat("law ", request.law, "\nbootstrap ", request.bootstrap, "\nseed ",
                                  request.seed, "\nthreads ", request.threads, "\n");
  for (const ScalingPoint& point : request.points) {
    absl::StrAppend(&text, "point ", point.run_id, " ", Number(point.n_params), " ",
                    Number(point.tokens), " ", Number(point.flops), " ", Number(point.loss), "\n");
  }
  return text;
}

absl::StatusOr<FitGroupRequest> ParseFitGroupRequest(absl::string_view text) {
  FitGroupRequest request;
  int line = 0;
  for (absl::string_view row : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line;
    std::vector<absl::string_view> words = absl::StrSplit(row, ' ', absl::SkipEmpty());
    const absl::string_view key = words[0];
    if (key == "law" && words.size() == 2) {
      request.law = std::string(words[1]);
    } else if (key == "bootstrap" && words.size() == 2 &&
               absl::SimpleAtoi(words[1], &request.bootstrap)) {
    } else if (key == "seed" && words.size() == 2 && absl::SimpleAtoi(words[1], &request.seed)) {
    } else if (key == "threads" && words.size() == 2 &&
               absl::SimpleAtoi(words[1], &request.threads)) {
    } else if (key == "point" && words.size() == 6) {
      ScalingPoint point;
      std::vector<double> values;
      if (!absl::SimpleAtoi(words[1], &point.run_id)) {
        return absl::InvalidArgumentError(absl::StrCat("fit group line ", line, ": bad run id"));
      }
      if (auto status = ParseNumbers(words, 2, line, &values); !status.ok()) return status;
      point.n_params = values[0];
      point.tokens = values[1];
      point.flops = values[2];
      point.loss = values[3];
      request.points.push_back(point);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("fit group line ", line, ": unexpected \"", row.substr(0, 80), "\""));
    }
  }
  return request;
}

std::string EncodeFitGroupResult(const FitGroupResult& result) {
  if (!result.error.empty()) {
    std::string error = result.error;
    for (char& c : error) {
      if (c == '\n') c = ' ';
    }
    return absl::StrCat("error ", error, "\n");
  }
  std::string text = absl::StrCat("names ", absl::StrJoin(result.param_names, " "), "\nparams ",
                                  Numbers(result.params), "\nobjective ", Number(result.objective),
                                  "\nholdout ", Number(result.holdout_rel_error), "\n");
  const size_t width = result.params.size();
  for (size_t row = 0; width > 0 && (row + 1) * width <= result.samples.size(); ++row) {
    std::vector<double> values(result.samples.begin() + row * width,
                               result.samples.begin() + (row + 1) * width);
    absl::StrAppend(&text, "sample ", Numbers(values), "\n");
  }
  return text;
}

absl::StatusOr<FitGroupResult> ParseFitGroupResult(absl::string_view text) {
  FitGroupResult result;
  int line = 0;
  bool has_params = false;
  for (absl::string_view row : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line;
    if (absl::ConsumePrefix(&row, "error ")) {
      result.error = std::string(row);
      return result;
    }
    std::vector<absl::string_view> words = absl::StrSplit(row, ' ', absl::SkipEmpty());
    const absl::string_view key = words[0];
    if (key == "names") {
      for (size_t idx = 1; idx < words.size(); ++idx) result.param_names.emplace_back(words[idx]);
    } else if (key == "params") {
      if (auto status = ParseNumbers(words, 1, line, &result.params); !status.ok()) return status;
      has_params = true;
    } else if (key == "objective" && words.size() == 2) {
      auto value = ParseNumber(words[1], line);
      if (!value.ok()) return value.status();
      result.objective = *value;
    } else if (key == "holdout" && words.size() == 2) {
      auto value = ParseNumber(words[1], line);
      if (!value.ok()) return value.status();
      result.holdout_rel_error = *value;
    } else if (key == "sample") {
      if (words.size() != result.params.size() + 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("fit group line ", line, ": a sample row of the wrong width"));
      }
      if (auto status = ParseNumbers(words, 1, line, &result.samples); !status.ok()) {
        return status;
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("fit group line ", line, ": unexpected \"", row.substr(0, 80), "\""));
    }
  }
  if (!has_params || result.params.size() != result.param_names.size()) {
    return absl::InvalidArgumentError(
        "fit group result: no parameters, or names that do not match");
  }
  return result;
}

}  // namespace scalelab::analysis
