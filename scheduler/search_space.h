// The space of a random or search sweep (SearchDimension in proto/scalelab/v1/common.proto):
// sampling points, and the operators that derive a new point from finished ones. A point maps
// each dimension's key to its value as text, the same form as a grid run's overrides.
//
// Pure and deterministic: every random choice comes from the SearchRng passed in, so a seed gives
// the same points on every machine (no std:: distributions, whose output differs by library).
// Thread-compatible: a SearchSpace is immutable after Create.
#ifndef SCALELAB_SCHEDULER_SEARCH_SPACE_H_
#define SCALELAB_SCHEDULER_SEARCH_SPACE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "scalelab/v1/common.pb.h"

namespace scalelab::scheduler {

using SearchPoint = std::map<std::string, std::string>;

// SplitMix64: small, fast, and the same sequence everywhere.
class SearchRng {
 public:
  explicit SearchRng(uint64_t seed) : state_(seed) {}
  // A generator for one step of a search: the same (seed, generation) gives the same stream.
  static SearchRng ForGeneration(int64_t seed, int64_t generation);
  uint64_t Next();
  double Uniform();     // [0, 1)
  int Index(int size);  // [0, size), size > 0
  bool Coin() { return (Next() >> 63) != 0; }

 private:
  uint64_t state_;
};

class SearchSpace {
 public:
  // Checks each dimension: a key, given once; a non-empty list of distinct values, or a range with
  // finite low <= high (low > 0 when log), step >= 0. InvalidArgument names the dimension by
  // `path` ("sweep.search.dimensions[1]") and the field.
  static absl::StatusOr<SearchSpace> Create(
      const google::protobuf::RepeatedPtrField<scalelab::v1::SearchDimension>& dimensions,
      const std::string& path);

  const std::vector<scalelab::v1::SearchDimension>& dimensions() const { return dimensions_; }

  // A point drawn uniformly (log-uniformly for log ranges; one value of each list).
  SearchPoint Sample(SearchRng& rng) const;
  // The values a dimension can take at its ends (a range's rounded low and high) or all of a
  // list's values: what validation checks before any run is made.
  std::vector<std::string> BoundaryValues(int dimension_idx) const;

  // perturb: one dimension moves a little (see SearchOperator.factor in common.proto).
  SearchPoint Perturb(const SearchPoint& point, double factor, SearchRng& rng) const;
  // scale: dimension `key` ("" = a random range dimension, else a random one) is multiplied by
  // factor; a list dimension moves one value up (factor >= 1) or down.
  SearchPoint Scale(const SearchPoint& point, double factor, const std::string& key,
                    SearchRng& rng) const;
  // crossover: each dimension from `a` or `b`, by a fair coin.
  SearchPoint Crossover(const SearchPoint& a, const SearchPoint& b, SearchRng& rng) const;

  // Text of a range value after rounding ("64", "0.003").
  std::string Format(const scalelab::v1::SearchDimension& dimension, double value) const;

 private:
  explicit SearchSpace(std::vector<scalelab::v1::SearchDimension> dimensions)
      : dimensions_(std::move(dimensions)) {}
  // Clamps into [low, high] and rounds as the dimension says.
  double Snap(const scalelab::v1::SearchDimension& dimension, double value) const;
  // Index of the point's value in a list dimension; 0 when absent.
  static int ListIndex(const scalelab::v1::SearchDimension& dimension, const SearchPoint& point);
  static double RangeValue(const scalelab::v1::SearchDimension& dimension,
                           const SearchPoint& point);
  // Moves dimension `dimension_idx` of `point` by `direction` steps of size `factor`.
  void Move(int dimension_idx, double factor, bool up, bool multiplicative,
            SearchPoint* point) const;

  std::vector<scalelab::v1::SearchDimension> dimensions_;
};

}  // namespace scalelab::scheduler

#endif  // SCALELAB_SCHEDULER_SEARCH_SPACE_H_
