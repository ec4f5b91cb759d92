#include "services/analysis/comparison.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/analysis/allocation.h"

namespace scalelab::analysis {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// D for already-checked inputs; +inf when unreachable.
double Tokens(const ChinchillaParams& params, double n_params, double target_loss) {
  const double headroom =
      target_loss - params.E() - std::exp(params.a - params.alpha * std::log(n_params));
  if (!(headroom > 0)) return kInfinity;
  return std::exp((params.b - std::log(headroom)) / params.beta);
}

absl::Status CheckPositive(const char* field, double value) {
  if (std::isfinite(value) && value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": expected a finite positive number, got ", value));
}

}  // namespace

absl::StatusOr<double> TokensToReachLoss(const ChinchillaParams& params, double n_params,
                                         double target_loss) {
  if (auto status = CheckPositive("n_params", n_params); !status.ok()) return status;
  if (auto status = CheckPositive("target_loss", target_loss); !status.ok()) return status;
  if (!(params.beta > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tokens to reach loss: expected beta > 0, got ", params.beta));
  }
  return Tokens(params, n_params, target_loss);
}

absl::StatusOr<double> DataEfficiencyMultiplier(const ChinchillaParams& slower,
                                                const ChinchillaParams& faster, double n_params,
                                                double target_loss) {
  absl::StatusOr<double> slower_tokens = TokensToReachLoss(slower, n_params, target_loss);
  if (!slower_tokens.ok()) return slower_tokens.status();
  absl::StatusOr<double> faster_tokens = TokensToReachLoss(faster, n_params, target_loss);
  if (!faster_tokens.ok()) return faster_tokens.status();
  for (const auto& [name, tokens, params] : {std::tuple("slower", *slower_tokens, &slower),
                                             std::tuple("faster", *faster_tokens, &faster)}) {
    if (std::isinf(tokens)) {
      return absl::OutOfRangeError(absl::StrCat("data-efficiency multiplier: the ", name,
                                                " group cannot reach loss ", target_loss,
                                                " at N = ", n_params, " (its floor there is ",
                                                Predict(*params, n_params, kInfinity), ")"));
    }
  }
  return *slower_tokens / *faster_tokens;
}

absl::StatusOr<Estimate> EstimateDataEfficiencyMultiplier(const GroupFit& slower,
                                                          const GroupFit& faster, double n_params,
                                                          double target_loss, double confidence) {
  absl::StatusOr<double> value =
      DataEfficiencyMultiplier(slower.fit.params, faster.fit.params, n_params, target_loss);
  if (!value.ok()) return value.status();
  for (const GroupFit* group : {&slower, &faster}) {
    if (group->samples.param_names != ChinchillaParamNames()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "group ", group->name, ": samples are not of the Chinchilla law (a, b, e, alpha, beta)"));
    }
  }
  const size_t pairs = std::min(slower.samples.num_samples(), faster.samples.num_samples());
  std::vector<double> ratios(pairs);
  for (size_t pair = 0; pair < pairs; ++pair) {
    const ChinchillaParams slow = ChinchillaParams::FromVector(slower.samples.Row(pair));
    const ChinchillaParams fast = ChinchillaParams::FromVector(faster.samples.Row(pair));
    // A resample with beta <= 0 has no token requirement; NaN is skipped like +inf.
    ratios[pair] = slow.beta > 0 && fast.beta > 0
                       ? Tokens(slow, n_params, target_loss) / Tokens(fast, n_params, target_loss)
                       : kNaN;
  }
  return PercentileEstimate(*value, ratios, confidence);
}

}  // namespace scalelab::analysis
