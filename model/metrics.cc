#include "model/metrics.h"

#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"

namespace scalelab::model {
namespace {

std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "null";
  char buffer[40];
  // Integers below 2^53 are exact in a double; %.9g would turn a 1.2e9 parameter count into
  // an exponent and lose digits.
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    std::snprintf(buffer, sizeof(buffer), "%.0f", value);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.9g", value);
  }
  return buffer;
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::vector<double> VectorMetricSink::Values(const std::string& name) const {
  std::vector<double> values;
  for (const Metric& metric : metrics_) {
    if (metric.name == name) values.push_back(metric.value);
  }
  return values;
}

std::string FormatMetricJson(const Metric& metric) {
  return absl::StrCat("{\"step\":", metric.step, ",\"tokens\":", metric.tokens,
                      ",\"name\":", JsonString(metric.name),
                      ",\"value\":", JsonNumber(metric.value),
                      ",\"wall_time_s\":", JsonNumber(metric.wall_time_s), "}");
}

std::string FormatArtifactJson(const ArtifactRecord& artifact) {
  return absl::StrCat("{\"artifact\":", JsonString(artifact.kind),
                      ",\"path\":", JsonString(artifact.path), ",\"step\":", artifact.step, "}");
}

std::string FormatRecordJson(const scalelab::v1::RunRecord& record) {
  return absl::StrCat(
      "{\"record\":\"run\",\"family\":", JsonString(record.family()),
      ",\"n_params\":", record.n_params(), ",\"n_params_total\":", record.n_params_total(),
      ",\"flops_per_token\":", JsonNumber(record.flops_per_token()),
      ",\"tokens\":", JsonNumber(record.tokens()), ",\"flops\":", JsonNumber(record.flops()), "}");
}

std::string FormatEvalJson(const scalelab::v1::EvalResult& eval) {
  std::string line = absl::StrCat(
      "{\"eval\":", JsonString(eval.metric()), ",\"step\":", eval.step(),
      ",\"task_set\":", JsonString(eval.task_set()), ",\"split\":", JsonString(eval.split()),
      ",\"category\":", JsonString(eval.category()), ",\"n\":", eval.n(), ",\"k\":", eval.k(),
      ",\"value\":", JsonNumber(eval.value()));
  if (eval.has_low() || eval.has_high()) {
    absl::StrAppend(&line, ",\"low\":", JsonNumber(eval.low()),
                    ",\"high\":", JsonNumber(eval.high()));
  }
  absl::StrAppend(&line, ",\"problems\":", eval.problems(), "}");
  return line;
}

}  // namespace scalelab::model
