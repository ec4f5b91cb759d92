#include "runspec/eval_result.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "runspec/text.h"

namespace scalelab::runspec {
namespace {

absl::Status CheckName(const std::string& value, const char* field, bool may_be_empty) {
  if (value.empty() && !may_be_empty) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected a name, got \"\""));
  }
  if (value.size() > kMaxEvalNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected at most ", kMaxEvalNameBytes,
                                                   " bytes, got ", value.size(), " bytes ",
                                                   Quoted(value)));
  }
  for (char c : value) {
    // Names end up in table columns and CSV cells; a newline or escape sequence would break them.
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": expected printable text without control characters, got ", Quoted(value)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool IsFractionMetric(const std::string& metric) {
  return metric == "pass@k" || metric == "accuracy";
}

absl::Status ValidateEvalResult(const v1::EvalResult& eval) {
  if (eval.step() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("step: expected >= 0, got ", eval.step()));
  }
  for (absl::Status status :
       {CheckName(eval.task_set(), "task_set", false), CheckName(eval.split(), "split", false),
        CheckName(eval.category(), "category", true), CheckName(eval.metric(), "metric", false)}) {
    if (!status.ok()) return status;
  }
  if (eval.n() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("n: expected >= 1 samples per problem, got ", eval.n()));
  }
  if (eval.k() < 1 || eval.k() > eval.n()) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: expected 1 <= k <= n (n = ", eval.n(), "), got ", eval.k()));
  }
  const double value = eval.value();
  if (!std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat("value: expected a finite number, got ", value));
  }
  if (IsFractionMetric(eval.metric()) && (value < 0 || value > 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("value: expected a fraction in [0, 1] for ", eval.metric(), ", got ", value));
  }
  if (eval.has_low() != eval.has_high()) {
    return absl::InvalidArgumentError(
        absl::StrCat(eval.has_low() ? "high" : "low",
                     ": expected both ends of the interval or neither, got only ",
                     eval.has_low() ? "low" : "high"));
  }
  if (eval.has_low()) {
    if (!std::isfinite(eval.low()) || !std::isfinite(eval.high())) {
      return absl::InvalidArgumentError(absl::StrCat("low, high: expected finite numbers, got [",
                                                     eval.low(), ", ", eval.high(), "]"));
    }
    if (!(eval.low() <= value && value <= eval.high())) {
      return absl::InvalidArgumentError(
          absl::StrCat("low, high: expected low <= value <= high, got ", eval.low(), " <= ", value,
                       " <= ", eval.high()));
    }
  }
  if (eval.problems() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("problems: expected >= 0, got ", eval.problems()));
  }
  return absl::OkStatus();
}

absl::Status ValidateEvalResults(const google::protobuf::RepeatedPtrField<v1::EvalResult>& evals) {
  if (evals.size() > kMaxEvalsPerReport) {
    return absl::InvalidArgumentError(absl::StrCat("evals: expected at most ", kMaxEvalsPerReport,
                                                   " results a report, got ", evals.size()));
  }
  for (int eval_idx = 0; eval_idx < evals.size(); ++eval_idx) {
    absl::Status status = ValidateEvalResult(evals.Get(eval_idx));
    if (!status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("evals[", eval_idx, "].", status.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace scalelab::runspec
