#include "model/sft_data.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "absl/strings/str_cat.h"
#include "model/mix_seed.h"

namespace scalelab::model {
namespace {

// Fisher-Yates with an explicit draw: std::shuffle's use of the engine is not specified, so its
// order could change between standard libraries.
std::vector<int64_t> Permutation(int64_t size, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 engine(seed);
  for (int64_t i = size - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(engine() % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

// Appends example `example` to row `row` at column `column` of `out` (inputs and targets).
void PlaceExample(const SftExample& example, int64_t row, int64_t column, SftRows& out) {
  const int64_t length = static_cast<int64_t>(example.tokens.size());
  for (int64_t pos = 0; pos + 1 < length; ++pos) {
    const size_t cell = static_cast<size_t>(row * out.width + column + pos);
    out.inputs[cell] = example.tokens[static_cast<size_t>(pos)];
    // Position pos predicts token pos + 1, which counts only when it belongs to the response.
    const bool response = pos + 1 >= example.prompt_tokens;
    out.targets[cell] = response ? example.tokens[static_cast<size_t>(pos + 1)] : kIgnoreTarget;
    if (response) ++out.loss_tokens;
  }
  // In a packed row the last token of this example is the input whose target is the next
  // example's first token: a prompt token, so ignored. The cell is written when the next example
  // lands; left as padding otherwise.
  out.tokens += length;
}

}  // namespace

absl::StatusOr<SftExampleSet> BuildSftExamples(const TaskSet& tasks, tasks::Split split,
                                               int64_t count, bool use_solution, int64_t min_tokens,
                                               int64_t max_tokens) {
  if (max_tokens < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_example_tokens: expected at least 2, got ", max_tokens));
  }
  absl::StatusOr<std::vector<tasks::Problem>> problems = tasks.Problems(split, 0, count);
  if (!problems.ok()) return problems.status();
  SftExampleSet set;
  set.drawn = static_cast<int64_t>(problems->size());
  for (const tasks::Problem& problem : *problems) {
    SftExample example;
    example.tokens = EncodeBytes(PromptText(problem));
    example.prompt_tokens = static_cast<int64_t>(example.tokens.size());
    const std::vector<int64_t> response = EncodeBytes(ResponseText(problem, use_solution));
    example.tokens.insert(example.tokens.end(), response.begin(), response.end());
    const int64_t length = static_cast<int64_t>(example.tokens.size());
    if (length < min_tokens) {
      ++set.dropped_short;
    } else if (length > max_tokens) {
      ++set.dropped_long;
    } else {
      set.examples.push_back(std::move(example));
    }
  }
  return set;
}

std::vector<int64_t> SftExampleOrder(int64_t unique, double epochs, uint64_t seed) {
  std::vector<int64_t> order;
  if (unique <= 0 || !(epochs > 0)) return order;
  const int64_t total = std::llround(static_cast<double>(unique) * epochs);
  order.reserve(static_cast<size_t>(total));
  for (uint64_t epoch = 0; static_cast<int64_t>(order.size()) < total; ++epoch) {
    const std::vector<int64_t> permutation = Permutation(unique, MixSeed(seed, epoch));
    const int64_t take = std::min<int64_t>(unique, total - static_cast<int64_t>(order.size()));
    order.insert(order.end(), permutation.begin(), permutation.begin() + take);
  }
  return order;
}

SftRows LayOutSftBatch(const std::vector<SftExample>& examples, absl::Span<const int64_t> indices,
                       int64_t seq_len, bool pack) {
  // Row assignment first (row and column of each example), then the fill at the final width.
  std::vector<std::pair<int64_t, int64_t>> places;  // (row, column) per index
  std::vector<int64_t> row_tokens;                  // tokens placed in each row
  for (int64_t index : indices) {
    const int64_t length = static_cast<int64_t>(examples[static_cast<size_t>(index)].tokens.size());
    // A row of width w holds w + 1 tokens of examples: the last token is an input-less target.
    if (!pack || row_tokens.empty() || row_tokens.back() + length > seq_len + 1) {
      row_tokens.push_back(0);
    }
    places.emplace_back(static_cast<int64_t>(row_tokens.size()) - 1, row_tokens.back());
    row_tokens.back() += length;
  }
  SftRows out;
  out.rows = static_cast<int64_t>(row_tokens.size());
  for (int64_t tokens : row_tokens) out.width = std::max(out.width, tokens - 1);
  out.inputs.assign(static_cast<size_t>(out.rows * out.width), 0);
  out.targets.assign(static_cast<size_t>(out.rows * out.width), kIgnoreTarget);
  for (size_t idx = 0; idx < indices.size(); ++idx) {
    const SftExample& example = examples[static_cast<size_t>(indices[idx])];
    const auto [row, column] = places[idx];
    PlaceExample(example, row, column, out);
    // The boundary input (this example's last token, predicting the next example's first) exists
    // only when another example follows in the row; its target stays ignored.
    const int64_t last = column + static_cast<int64_t>(example.tokens.size()) - 1;
    if (last < out.width) {
      out.inputs[static_cast<size_t>(row * out.width + last)] = example.tokens.back();
    }
  }
  return out;
}

}  // namespace scalelab::model
