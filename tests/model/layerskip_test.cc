// LayerSkip training (model/layerskip.h, TransformerImpl::LayerSkipLoss): the dropout rates, the
// early-exit weights and curricula, and the loss against compositions written out by hand.

#include "model/layerskip.h"

#include <torch/torch.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <numeric>
#include <vector>

#include "model/metrics.h"
#include "model/ops.h"
#include "model/registry.h"
#include "model/spec_loader.h"
#include "model/trainer.h"
#include "model/transformer.h"
#include "runspec/run_config.h"
#include "tests/model/test_data.h"

namespace scalelab::model {
namespace {

namespace v1 = scalelab::v1;

v1::LayerSkipSpec Spec(double max_dropout, double exit_scale, const std::string& curriculum,
                       int rotation = 2) {
  v1::LayerSkipSpec spec;
  spec.set_max_dropout(max_dropout);
  spec.set_exit_scale(exit_scale);
  spec.set_curriculum(curriculum);
  spec.set_rotation(rotation);
  return spec;
}

std::shared_ptr<TransformerImpl> TinyTransformer(int64_t n_layers, uint64_t seed = 3) {
  v1::RunConfig config;
  v1::ModelSpec& model = *config.mutable_model();
  model.set_family("transformer");
  model.set_d_model(32);
  model.set_n_layers(static_cast<int32_t>(n_layers));
  model.set_n_heads(4);
  model.set_seq_len(16);
  model.set_d_ff(64);
  runspec::ApplyRunDefaults(&config);
  torch::manual_seed(seed);
  absl::StatusOr<std::shared_ptr<CausalLM>> built = BuildModel(config.model());
  REQUIRE(built.ok());
  auto transformer = std::dynamic_pointer_cast<TransformerImpl>(*built);
  REQUIRE(transformer != nullptr);
  return transformer;
}

TEST_CASE("Layer dropout rates rise as max_dropout * (2^(l / (L - 1)) - 1) from 0 to the maximum",
          "[model][unit][layerskip]") {
  const std::vector<double> rates = LayerDropoutRates(5, 0.2);
  REQUIRE(rates.size() == 5);
  for (int64_t layer = 0; layer < 5; ++layer) {
    INFO("layer " << layer);
    CHECK(rates[static_cast<size_t>(layer)] ==
          Approx(0.2 * (std::pow(2.0, static_cast<double>(layer) / 4.0) - 1)).epsilon(1e-12));
  }
  CHECK(rates.front() == 0);
  CHECK(rates.back() == 0.2);
  CHECK(rates[2] == Approx(0.2 * (std::sqrt(2.0) - 1)));
  CHECK(LayerDropoutRates(1, 0.5) == std::vector<double>{0.0});
  CHECK(LayerDropoutRates(3, 0.0) == std::vector<double>(3, 0.0));
}

TEST_CASE("Early-exit weights rise with depth, sum to 1 and follow the curriculum",
          "[model][unit][layerskip]") {
  SECTION("all: e_l = scale (l + 1) / L below the last, 1 at the last, normalised") {
    const std::vector<double> weights = EarlyExitWeights(4, Spec(0, 1.0, "all"), 0, 100);
    // Raw 0.25, 0.5, 0.75, 1; sum 2.5.
    CHECK(weights[0] == Approx(0.1));
    CHECK(weights[1] == Approx(0.2));
    CHECK(weights[2] == Approx(0.3));
    CHECK(weights[3] == Approx(0.4));
  }
  SECTION("exit_scale 0 leaves the last layer alone") {
    CHECK(EarlyExitWeights(3, Spec(0.1, 0, "all"), 5, 10) == std::vector<double>{0, 0, 1});
  }
  SECTION("rotational: every rotation-th layer, shifting with the step") {
    // L = 5, rotation 2: step 0 -> layers 0, 2 (+ 4); step 1 -> layers 1, 3 (+ 4).
    const std::vector<double> even = EarlyExitWeights(5, Spec(0, 2.0, "rotational", 2), 0, 10);
    const double even_sum = 2.0 * (1 + 3) / 5 + 1;
    CHECK(even[0] == Approx(2.0 * 1 / 5 / even_sum));
    CHECK(even[1] == 0);
    CHECK(even[2] == Approx(2.0 * 3 / 5 / even_sum));
    CHECK(even[3] == 0);
    CHECK(even[4] == Approx(1 / even_sum));
    const std::vector<double> odd = EarlyExitWeights(5, Spec(0, 2.0, "rotational", 2), 1, 10);
    const double odd_sum = 2.0 * (2 + 4) / 5 + 1;
    CHECK(odd[0] == 0);
    CHECK(odd[1] == Approx(2.0 * 2 / 5 / odd_sum));
    CHECK(odd[3] == Approx(2.0 * 4 / 5 / odd_sum));
    CHECK(odd[4] == Approx(1 / odd_sum));
  }
  SECTION("gradual: exits switch on from the top down, all on after half the run") {
    // L = 5, T = 80: one more exit every 80 / (2 * 4) = 10 steps.
    auto on = [](int64_t step) {
      const std::vector<double> weights = EarlyExitWeights(5, Spec(0, 1.0, "gradual"), step, 80);
      int64_t count = 0;
      for (double weight : weights) count += weight > 0 ? 1 : 0;
      CHECK(weights.back() > 0);
      return count;
    };
    CHECK(on(0) == 1);
    CHECK(on(9) == 1);
    CHECK(on(10) == 2);
    CHECK(on(25) == 3);
    CHECK(on(40) == 5);
    CHECK(on(79) == 5);
    const std::vector<double> at_10 = EarlyExitWeights(5, Spec(0, 1.0, "gradual"), 10, 80);
    CHECK(at_10[3] > 0);  // The layer just below the last switches on first.
    CHECK(at_10[2] == 0);
  }
  for (const char* curriculum : {"all", "rotational", "gradual"}) {
    for (int64_t step : {0, 3, 7}) {
      const std::vector<double> weights = EarlyExitWeights(6, Spec(0, 0.7, curriculum, 3), step, 8);
      CHECK(std::accumulate(weights.begin(), weights.end(), 0.0) == Approx(1.0));
    }
  }
}

TEST_CASE("ValidateLayerSkip names the field that is wrong", "[model][unit][layerskip]") {
  CHECK(ValidateLayerSkip(Spec(0.1, 1, "all")).ok());
  CHECK(ValidateLayerSkip(Spec(1.0, 1, "all")).message() ==
        "layerskip.max_dropout: expected a rate in [0, 1), got 1");
  CHECK(ValidateLayerSkip(Spec(0.1, -1, "all")).message() ==
        "layerskip.exit_scale: expected a finite number >= 0, got -1");
  CHECK(ValidateLayerSkip(Spec(0.1, 1, "random")).message() ==
        "layerskip.curriculum: expected \"all\", \"rotational\" or \"gradual\", got \"random\"");
  CHECK(ValidateLayerSkip(Spec(0.1, 1, "all", 0)).message() ==
        "layerskip.rotation: expected an integer >= 1, got 0");
}

TEST_CASE("With LayerSkip off the LayerSkip loss is exactly the plain loss, gradients too",
          "[model][unit][layerskip]") {
  std::shared_ptr<TransformerImpl> model = TinyTransformer(3);
  model->train();
  torch::manual_seed(11);
  const torch::Tensor tokens = torch::randint(0, 256, {4, 12}, torch::kLong);
  const torch::Tensor inputs = tokens.narrow(1, 0, 11);
  const torch::Tensor targets = tokens.narrow(1, 1, 11);
  const torch::Tensor plain = model->Loss(inputs, targets);
  const torch::Tensor skip = model->LayerSkipLoss(inputs, targets, Spec(0, 0, "all"), 0, 10);
  CHECK(skip.item<double>() == plain.item<double>());
  const std::vector<torch::Tensor> parameters = model->parameters();
  const std::vector<torch::Tensor> plain_grads = torch::autograd::grad({plain}, parameters);
  const std::vector<torch::Tensor> skip_grads = torch::autograd::grad({skip}, parameters);
  for (size_t param_idx = 0; param_idx < parameters.size(); ++param_idx) {
    CHECK(torch::equal(plain_grads[param_idx], skip_grads[param_idx]));
  }
}

TEST_CASE("Layer dropout acts in training mode only, per sample", "[model][unit][layerskip]") {
  std::shared_ptr<TransformerImpl> model = TinyTransformer(4);
  torch::manual_seed(5);
  const torch::Tensor tokens = torch::randint(0, 256, {8, 10}, torch::kLong);
  const torch::Tensor inputs = tokens.narrow(1, 0, 9);
  const torch::Tensor targets = tokens.narrow(1, 1, 9);
  const v1::LayerSkipSpec heavy = Spec(0.9, 0, "all");
  model->eval();
  const double plain = model->Loss(inputs, targets).item<double>();
  // Eval mode: every block runs, whatever max_dropout says.
  for (int draw = 0; draw < 3; ++draw) {
    CHECK(model->LayerSkipLoss(inputs, targets, heavy, 0, 10).item<double>() == plain);
  }
  // Training mode: rates up to 0.9 change the loss on some draw, and the draws differ.
  model->train();
  std::vector<double> losses;
  for (int draw = 0; draw < 6; ++draw) {
    losses.push_back(model->LayerSkipLoss(inputs, targets, heavy, 0, 10).item<double>());
  }
  CHECK(std::any_of(losses.begin(), losses.end(), [&](double loss) { return loss != plain; }));
  CHECK(std::any_of(losses.begin(), losses.end(), [&](double loss) { return loss != losses[0]; }));
}

TEST_CASE("Layer dropout skips whole blocks per sample, passing the row unchanged",
          "[model][unit][layerskip]") {
  std::shared_ptr<TransformerImpl> model = TinyTransformer(4);
  model->train();
  torch::manual_seed(6);
  const torch::Tensor tokens = torch::randint(0, 256, {1, 10}, torch::kLong);
  const torch::Tensor inputs = tokens.narrow(1, 0, 9);
  const torch::Tensor targets = tokens.narrow(1, 1, 9);
  // The loss of the row for each of the 8 ways to skip blocks 1..3 (block 0's rate is 0).
  std::vector<double> pattern_losses;
  for (int pattern = 0; pattern < 8; ++pattern) {
    torch::Tensor h = model->RunLayers(model->Embed(inputs), 0, 0, 1, nullptr);
    for (int64_t layer = 1; layer < 4; ++layer) {
      if ((pattern >> (layer - 1) & 1) == 0) h = model->RunLayers(h, 0, layer, layer + 1, nullptr);
    }
    pattern_losses.push_back(
        ops::CrossEntropy(model->Head(h).view({-1, 256}), targets.reshape({-1})).item<double>());
  }
  auto is_pattern = [&](double loss) {
    return std::any_of(pattern_losses.begin(), pattern_losses.end(),
                       [&](double pattern) { return std::abs(pattern - loss) < 1e-5; });
  };
  const v1::LayerSkipSpec heavy = Spec(0.9, 0, "all");
  // One row: every draw is one of the patterns (a skipped block leaves the row as it was).
  for (int draw = 0; draw < 10; ++draw) {
    CHECK(is_pattern(model->LayerSkipLoss(inputs, targets, heavy, 0, 10).item<double>()));
  }
  // Two identical rows skipping per sample: some draw gives them different patterns, so their
  // mean is no single pattern's loss (a per-batch skip would always give one).
  const torch::Tensor twin_inputs = inputs.repeat({2, 1});
  const torch::Tensor twin_targets = targets.repeat({2, 1});
  bool mixed = false;
  for (int draw = 0; draw < 30 && !mixed; ++draw) {
    mixed =
        !is_pattern(model->LayerSkipLoss(twin_inputs, twin_targets, heavy, 0, 10).item<double>());
  }
  CHECK(mixed);
}

TEST_CASE("The early-exit loss equals the weighted sum of every exit's cross-entropy by hand",
          "[model][unit][layerskip]") {
  std::shared_ptr<TransformerImpl> model = TinyTransformer(3);
  model->eval();  // No dropout: the sum is deterministic.
  torch::manual_seed(9);
  const torch::Tensor tokens = torch::randint(0, 256, {2, 9}, torch::kLong);
  const torch::Tensor inputs = tokens.narrow(1, 0, 8);
  const torch::Tensor targets = tokens.narrow(1, 1, 8).reshape({-1});
  // The exits by hand: each block's output through the final norm and the tied head.
  torch::Tensor h = model->Embed(inputs);
  std::vector<double> exit_losses;
  for (int64_t layer = 0; layer < 3; ++layer) {
    h = model->RunLayers(h, 0, layer, layer + 1, nullptr);
    const torch::Tensor logits = model->Head(h);
    exit_losses.push_back(
        torch::nn::functional::cross_entropy(logits.reshape({-1, 256}), targets).item<double>());
  }
  CHECK(exit_losses[2] == Approx(model->Loss(inputs, tokens.narrow(1, 1, 8)).item<double>()));
  // exit_scale 1.5, L = 3: raw weights 0.5, 1.0, 1 -> 0.2, 0.4, 0.4.
  const double all =
      model->LayerSkipLoss(inputs, tokens.narrow(1, 1, 8), Spec(0, 1.5, "all"), 0, 10)
          .item<double>();
  CHECK(all ==
        Approx(0.2 * exit_losses[0] + 0.4 * exit_losses[1] + 0.4 * exit_losses[2]).epsilon(1e-5));
  // Rotational, rotation 2, step 1: only layer 1 below the last: 1.0 and 1 -> 0.5, 0.5.
  const double rotational =
      model->LayerSkipLoss(inputs, tokens.narrow(1, 1, 8), Spec(0, 1.5, "rotational", 2), 1, 10)
          .item<double>();
  CHECK(rotational == Approx(0.5 * exit_losses[1] + 0.5 * exit_losses[2]).epsilon(1e-5));
}

// A pretraining run of 10 steps with `layerskip` as the YAML of train.layerskip ("" = none).
std::vector<double> PretrainLosses(const std::string& layerskip) {
  testing::TempDir dir;
  testing::WriteSource(dir, "text", testing::RepetitiveCorpus(20000));
  const std::string path = dir.Write("spec.yaml", R"(kind: RUN_KIND_PRETRAIN
config:
  model: {d_model: 32, n_layers: 3, n_heads: 2, seq_len: 32}
  data: {sources: {text: ")" + dir.path() + R"(/text"}}
  train: {tokens: 5120, batch_tokens: 512, lr: 1e-2)" +
                                                      layerskip + R"(}
  eval: {every_tokens: 5120, val_tokens: 1024, position_buckets: 1}
)");
  absl::StatusOr<v1::RunSpec> spec = LoadRunSpec(path, SpecOverrides{});
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  VectorMetricSink sink;
  absl::StatusOr<TrainSummary> summary = Train(*spec, sink);
  INFO(summary.status().ToString());
  REQUIRE(summary.ok());
  return sink.Values("train_loss");
}

TEST_CASE("The pretrain loop trains through the LayerSkip loss when train.layerskip is on",
          "[model][layerskip]") {
  const std::vector<double> plain = PretrainLosses("");
  // Off (both knobs 0): exactly the plain run.
  CHECK(PretrainLosses(", layerskip: {max_dropout: 0, exit_scale: 0}") == plain);
  // Early exits only, no dropout: the first step's loss is the weighted sum over three exits of
  // the same initial model on the same batch, which is not the last exit's loss alone.
  const std::vector<double> exits = PretrainLosses(", layerskip: {exit_scale: 1}");
  REQUIRE(exits.size() == plain.size());
  CHECK(exits.front() != plain.front());
  CHECK(exits.back() < 0.8 * exits.front());  // It trains.
  const std::vector<double> dropout =
      PretrainLosses(", layerskip: {max_dropout: 0.5, curriculum: rotational}");
  CHECK(dropout.size() == plain.size());
  CHECK(dropout != plain);
}

}  // namespace
}  // namespace scalelab::model
