#include "model/layerskip.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace scalelab::model {

bool LayerSkipEnabled(const scalelab::v1::LayerSkipSpec& spec) {
  return spec.max_dropout() != 0 || spec.exit_scale() != 0;
}

std::vector<double> LayerDropoutRates(int64_t n_layers, double max_dropout) {
  std::vector<double> rates(static_cast<size_t>(std::max<int64_t>(n_layers, 0)), 0.0);
  if (n_layers < 2) return rates;
  const double last = static_cast<double>(n_layers - 1);
  for (int64_t layer_idx = 0; layer_idx < n_layers; ++layer_idx) {
    rates[static_cast<size_t>(layer_idx)] =
        max_dropout * (std::exp(static_cast<double>(layer_idx) * std::log(2.0) / last) - 1.0);
  }
  // exp(ln 2) rounds to 2 only up to an ulp; the last rate is max_dropout by definition.
  rates.back() = max_dropout;
  return rates;
}

std::vector<double> EarlyExitWeights(int64_t n_layers, const scalelab::v1::LayerSkipSpec& spec,
                                     int64_t step, int64_t total_steps) {
  std::vector<double> weights(static_cast<size_t>(std::max<int64_t>(n_layers, 0)), 0.0);
  if (n_layers < 1) return weights;
  const int64_t last = n_layers - 1;
  const int64_t rotation = std::max<int32_t>(spec.rotation(), 1);
  // Early exits switched on by "gradual": one more every T / (2 (L - 1)) steps.
  const int64_t gradual_on =
      total_steps <= 0 ? last
                       : std::min<int64_t>(
                             last, static_cast<int64_t>(std::floor(
                                       2.0 * static_cast<double>(last) * static_cast<double>(step) /
                                       static_cast<double>(total_steps))));
  double sum = 0;
  for (int64_t layer_idx = 0; layer_idx < n_layers; ++layer_idx) {
    bool counts = true;
    if (layer_idx < last) {
      if (spec.curriculum() == "rotational") {
        counts = ((layer_idx - step) % rotation + rotation) % rotation == 0;
      } else if (spec.curriculum() == "gradual") {
        counts = layer_idx >= last - gradual_on;
      }
    }
    const double raw = layer_idx == last ? 1.0
                                         : spec.exit_scale() * static_cast<double>(layer_idx + 1) /
                                               static_cast<double>(n_layers);
    weights[static_cast<size_t>(layer_idx)] = counts ? raw : 0.0;
    sum += weights[static_cast<size_t>(layer_idx)];
  }
  for (double& weight : weights) weight /= sum;  // sum >= 1: the last layer always counts.
  return weights;
}

absl::Status ValidateLayerSkip(const scalelab::v1::LayerSkipSpec& spec) {
  if (!(spec.max_dropout() >= 0 && spec.max_dropout() < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("layerskip.max_dropout: expected a rate in [0, 1), got ", spec.max_dropout()));
  }
  if (!(spec.exit_scale() >= 0) || !std::isfinite(spec.exit_scale())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "layerskip.exit_scale: expected a finite number >= 0, got ", spec.exit_scale()));
  }
  const std::string& curriculum = spec.curriculum();
  if (curriculum != "all" && curriculum != "rotational" && curriculum != "gradual") {
    return absl::InvalidArgumentError(absl::StrCat(
        "layerskip.curriculum: expected \"all\", \"rotational\" or \"gradual\", got \"",
        curriculum.substr(0, 64), "\""));
  }
  if (spec.rotation() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("layerskip.rotation: expected an integer >= 1, got ", spec.rotation()));
  }
  return absl::OkStatus();
}

}  // namespace scalelab::model
