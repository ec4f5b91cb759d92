// The rules of an evaluation result (v1::EvalResult), shared by everything that handles one:
// the worker checks each line the trainer prints, the scheduler each report before the store
// writes anything. One validator, so what one side accepts the other accepts.
#ifndef SCALELAB_RUNSPEC_EVAL_RESULT_H_
#define SCALELAB_RUNSPEC_EVAL_RESULT_H_

#include <cstddef>

#include "absl/status/status.h"
#include "scalelab/v1/eval.pb.h"

namespace scalelab::runspec {

// Longest task_set, split, category or metric name, in bytes.
inline constexpr size_t kMaxEvalNameBytes = 128;
// Most results one report may carry (a few MB at most on the wire).
inline constexpr int kMaxEvalsPerReport = 4096;

// OK, or InvalidArgument naming the field, the value and what was expected:
//   step >= 0; task_set, split, metric non-empty; every name at most kMaxEvalNameBytes bytes of
//   printable text (no control characters); n >= 1; 1 <= k <= n; value finite and, for the
//   fractions "pass@k" and "accuracy", in [0, 1]; low and high, when given, finite with
//   low <= value <= high; problems >= 0. run_id, attempt and created_at are not looked at.
absl::Status ValidateEvalResult(const v1::EvalResult& eval);

// Every result of a report: at most kMaxEvalsPerReport of them, each valid. The error names
// the first bad one by index ("evals[3].k: ...").
absl::Status ValidateEvalResults(const google::protobuf::RepeatedPtrField<v1::EvalResult>& evals);

// True for metrics whose value is a fraction of problems ("pass@k", "accuracy").
bool IsFractionMetric(const std::string& metric);

}  // namespace scalelab::runspec

#endif  // SCALELAB_RUNSPEC_EVAL_RESULT_H_
