#include "scheduler/search_space.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "runspec/text.h"

namespace scalelab::scheduler {
namespace {

using ::scalelab::runspec::Quoted;
using ::scalelab::v1::SearchDimension;

bool IsList(const SearchDimension& dimension) { return dimension.values_size() > 0; }

}  // namespace

SearchRng SearchRng::ForGeneration(int64_t seed, int64_t generation) {
  // Two SplitMix steps decorrelate neighbouring (seed, generation) pairs.
  SearchRng mix(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL ^
                static_cast<uint64_t>(generation));
  mix.Next();
  return SearchRng(mix.Next());
}

uint64_t SearchRng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double SearchRng::Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

int SearchRng::Index(int size) { return static_cast<int>(Next() % static_cast<uint64_t>(size)); }

absl::StatusOr<SearchSpace> SearchSpace::Create(
    const google::protobuf::RepeatedPtrField<SearchDimension>& dimensions,
    const std::string& path) {
  if (dimensions.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected at least one dimension, got none"));
  }
  std::set<std::string> keys;
  for (int dimension_idx = 0; dimension_idx < dimensions.size(); ++dimension_idx) {
    const SearchDimension& dimension = dimensions[dimension_idx];
    const std::string where = absl::StrCat(path, ".", Quoted(dimension.key()));
    if (dimension.key().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": expected a key for every dimension, got \"\""));
    }
    if (!keys.insert(dimension.key()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": expected each key once, got ", Quoted(dimension.key()), " twice"));
    }
    if (IsList(dimension)) {
      std::set<std::string> seen;
      for (const std::string& value : dimension.values()) {
        if (!seen.insert(value).second) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": expected distinct values, got ",
                                                         Quoted(value), " more than once"));
        }
      }
      continue;
    }
    if (!std::isfinite(dimension.low()) || !std::isfinite(dimension.high()) ||
        dimension.low() > dimension.high()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected a list of values or a range with low <= high, got [",
                       dimension.low(), ", ", dimension.high(), "]"));
    }
    if (dimension.log() && dimension.low() <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ".low: expected a positive number for a log range, got ", dimension.low()));
    }
    if (!(dimension.step() >= 0) || !std::isfinite(dimension.step())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".step: expected a number >= 0, got ", dimension.step()));
    }
    if (dimension.step() > 0 && std::ceil(dimension.low() / dimension.step()) >
                                    std::floor(dimension.high() / dimension.step())) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".step: expected a multiple of ",
                                                     dimension.step(), " within [", dimension.low(),
                                                     ", ", dimension.high(), "], got none"));
    }
    if (dimension.integer() && std::ceil(dimension.low()) > std::floor(dimension.high())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".integer: expected an integer within [", dimension.low(), ", ",
                       dimension.high(), "], got none"));
    }
  }
  return SearchSpace(std::vector<SearchDimension>(dimensions.begin(), dimensions.end()));
}

double SearchSpace::Snap(const SearchDimension& dimension, double value) const {
  value = std::clamp(value, dimension.low(), dimension.high());
  if (dimension.step() > 0) {
    const double lowest = std::ceil(dimension.low() / dimension.step());
    const double highest = std::floor(dimension.high() / dimension.step());
    value = std::clamp(std::round(value / dimension.step()), lowest, highest) * dimension.step();
  }
  if (dimension.integer()) {
    value = std::clamp(std::round(value), std::ceil(dimension.low()), std::floor(dimension.high()));
  }
  return value;
}

std::string SearchSpace::Format(const SearchDimension& dimension, double value) const {
  const double snapped = Snap(dimension, value);
  if (dimension.integer() ||
      (dimension.step() > 0 && dimension.step() == std::floor(dimension.step()))) {
    return absl::StrCat(static_cast<int64_t>(std::llround(snapped)));
  }
  return absl::StrFormat("%.6g", snapped);
}

SearchPoint SearchSpace::Sample(SearchRng& rng) const {
  SearchPoint point;
  for (const SearchDimension& dimension : dimensions_) {
    if (IsList(dimension)) {
      point[dimension.key()] = dimension.values(rng.Index(dimension.values_size()));
      continue;
    }
    const double u = rng.Uniform();
    double value = 0;
    if (dimension.log()) {
      value = std::exp(std::log(dimension.low()) +
                       u * (std::log(dimension.high()) - std::log(dimension.low())));
    } else {
      value = dimension.low() + u * (dimension.high() - dimension.low());
    }
    point[dimension.key()] = Format(dimension, value);
  }
  return point;
}

std::vector<std::string> SearchSpace::BoundaryValues(int dimension_idx) const {
  const SearchDimension& dimension = dimensions_[dimension_idx];
  if (IsList(dimension)) return {dimension.values().begin(), dimension.values().end()};
  std::vector<std::string> values = {Format(dimension, dimension.low())};
  const std::string high = Format(dimension, dimension.high());
  if (high != values.front()) values.push_back(high);
  return values;
}

int SearchSpace::ListIndex(const SearchDimension& dimension, const SearchPoint& point) {
  auto it = point.find(dimension.key());
  if (it == point.end()) return 0;
  for (int value_idx = 0; value_idx < dimension.values_size(); ++value_idx) {
    if (dimension.values(value_idx) == it->second) return value_idx;
  }
  return 0;
}

double SearchSpace::RangeValue(const SearchDimension& dimension, const SearchPoint& point) {
  double value = dimension.low();
  auto it = point.find(dimension.key());
  if (it != point.end()) (void)absl::SimpleAtod(it->second, &value);
  return value;
}

void SearchSpace::Move(int dimension_idx, double factor, bool up, bool multiplicative,
                       SearchPoint* point) const {
  const SearchDimension& dimension = dimensions_[dimension_idx];
  if (IsList(dimension)) {
    int value_idx = ListIndex(dimension, *point) + (up ? 1 : -1);
    // At an end, a move goes the other way rather than nowhere.
    if (value_idx >= dimension.values_size()) value_idx = dimension.values_size() - 2;
    if (value_idx < 0) value_idx = std::min(1, dimension.values_size() - 1);
    (*point)[dimension.key()] = dimension.values(value_idx);
    return;
  }
  const double value = RangeValue(dimension, *point);
  double moved = 0;
  if (multiplicative) {
    moved = up ? value * factor : value / factor;
  } else {
    const double delta = (factor - 1) * (dimension.high() - dimension.low());
    moved = up ? value + delta : value - delta;
  }
  std::string text = Format(dimension, moved);
  // Rounding can swallow a small move (an integer range, a coarse step): take one step instead.
  if (text == (*point)[dimension.key()]) {
    const double unit = dimension.step() > 0 ? dimension.step() : (dimension.integer() ? 1 : 0);
    if (unit > 0) text = Format(dimension, up ? value + unit : value - unit);
  }
  (*point)[dimension.key()] = text;
}

SearchPoint SearchSpace::Perturb(const SearchPoint& point, double factor, SearchRng& rng) const {
  SearchPoint result = point;
  const int dimension_idx = rng.Index(static_cast<int>(dimensions_.size()));
  const bool up = rng.Coin();
  Move(dimension_idx, factor, up, dimensions_[dimension_idx].log(), &result);
  return result;
}

SearchPoint SearchSpace::Scale(const SearchPoint& point, double factor, const std::string& key,
                               SearchRng& rng) const {
  int dimension_idx = -1;
  for (int idx = 0; idx < static_cast<int>(dimensions_.size()); ++idx) {
    if (dimensions_[idx].key() == key) dimension_idx = idx;
  }
  if (dimension_idx < 0) {
    std::vector<int> ranges;
    for (int idx = 0; idx < static_cast<int>(dimensions_.size()); ++idx) {
      if (!IsList(dimensions_[idx])) ranges.push_back(idx);
    }
    dimension_idx = ranges.empty() ? rng.Index(static_cast<int>(dimensions_.size()))
                                   : ranges[rng.Index(static_cast<int>(ranges.size()))];
  }
  SearchPoint result = point;
  // Scaling is multiplicative whatever the range's sampling; a factor below 1 scales down.
  Move(dimension_idx, factor >= 1 ? factor : 1 / factor, factor >= 1, true, &result);
  return result;
}

SearchPoint SearchSpace::Crossover(const SearchPoint& a, const SearchPoint& b,
                                   SearchRng& rng) const {
  SearchPoint result;
  for (const SearchDimension& dimension : dimensions_) {
    const SearchPoint& from = rng.Coin() ? a : b;
    auto it = from.find(dimension.key());
    if (it != from.end()) result[dimension.key()] = it->second;
  }
  return result;
}

}  // namespace scalelab::scheduler
