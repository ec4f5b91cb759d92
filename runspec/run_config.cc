#include "runspec/run_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runspec/text.h"

namespace scalelab::runspec {
namespace {

using ::scalelab::v1::RunConfig;

// Collects rule violations for CheckRunConfig.
class RuleChecker {
 public:
  // Records a violation of the rule about `path` unless `ok`. `also` lists the other keys the
  // rule read.
  void Require(bool ok, std::string path, std::string expected, std::string found,
               std::vector<std::string> also = {}) {
    if (ok) return;
    std::vector<std::string> involves = {path};
    involves.insert(involves.end(), also.begin(), also.end());
    errors_.push_back(
        {std::move(path), std::move(expected), std::move(found), std::move(involves)});
  }
  void RequirePositive(int64_t value, std::string path) {
    Require(value > 0, std::move(path), "a positive integer", absl::StrCat(value));
  }
  void RequireNonNegative(int64_t value, std::string path) {
    Require(value >= 0, std::move(path), "an integer >= 0", absl::StrCat(value));
  }
  void RequirePositive(double value, std::string path, std::string what) {
    Require(std::isfinite(value) && value > 0, std::move(path), std::move(what),
            absl::StrCat(value));
  }
  std::vector<FieldError> Take() { return std::move(errors_); }

 private:
  std::vector<FieldError> errors_;
};

template <typename Map>
std::vector<std::string> SortedKeys(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : map) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

void CheckModel(const scalelab::v1::ModelSpec& model, RuleChecker* checker) {
  checker->Require(model.family() == "transformer", "model.family", "\"transformer\"",
                   Quoted(model.family()));
  checker->RequirePositive(model.d_model(), "model.d_model");
  checker->RequirePositive(model.n_layers(), "model.n_layers");
  checker->RequirePositive(model.n_heads(), "model.n_heads");
  checker->RequirePositive(model.seq_len(), "model.seq_len");
  if (model.d_model() > 0 && model.n_heads() > 0) {
    checker->Require(model.d_model() % model.n_heads() == 0, "model.d_model",
                     absl::StrCat("a multiple of model.n_heads (", model.n_heads(), ")"),
                     absl::StrCat(model.d_model()), {"model.n_heads"});
  }
  checker->Require(model.d_ff() >= 0, "model.d_ff", "an integer >= 0 (0 means 4 * d_model)",
                   absl::StrCat(model.d_ff()));
  // Token shards hold bytes today (uint16 tokens later), so every vocabulary covers the bytes.
  checker->Require(model.vocab_size() >= 256 && model.vocab_size() <= 65536, "model.vocab_size",
                   "an integer in [256, 65536] (the data is byte-level)",
                   absl::StrCat(model.vocab_size()));
}

void CheckData(const scalelab::v1::DataSpec& data, RuleChecker* checker) {
  const std::vector<std::string> sources = SortedKeys(data.sources());
  checker->Require(!sources.empty(), "data.sources", "at least one source", "none");
  for (const std::string& name : sources) {
    checker->Require(!data.sources().at(name).empty(), JoinKey("data.sources", name),
                     "a non-empty folder", "\"\"");
  }
  // Protobuf maps iterate in no fixed order; sorting keeps the first error stable.
  double weight_sum = 0;
  bool weights_ok = true;
  for (const std::string& name : SortedKeys(data.mixture())) {
    const std::string path = JoinKey("data.mixture", name);
    checker->Require(data.sources().find(name) != data.sources().end(), path,
                     absl::StrCat("the name of a source (", absl::StrJoin(sources, ", "), ")"),
                     Quoted(name), {"data.sources"});
    const double weight = data.mixture().at(name);
    const bool weight_ok = std::isfinite(weight) && weight >= 0;
    checker->Require(weight_ok, path, "a finite weight >= 0", absl::StrCat(weight));
    weights_ok = weights_ok && weight_ok;
    weight_sum += weight;
  }
  if (!data.mixture().empty() && weights_ok) {
    checker->Require(weight_sum > 0, "data.mixture", "weights with a positive sum",
                     absl::StrCat(weight_sum));
  }
}

void CheckTrain(const scalelab::v1::TrainSpec& train, const scalelab::v1::ModelSpec& model,
                RuleChecker* checker) {
  checker->RequirePositive(train.tokens(), "train.tokens", "a positive number of tokens");
  checker->RequirePositive(train.batch_tokens(), "train.batch_tokens");
  if (train.batch_tokens() > 0 && model.seq_len() > 0) {
    checker->Require(train.batch_tokens() % model.seq_len() == 0, "train.batch_tokens",
                     absl::StrCat("a multiple of model.seq_len (", model.seq_len(), ")"),
                     absl::StrCat(train.batch_tokens()), {"model.seq_len"});
  }
  checker->RequirePositive(train.lr(), "train.lr", "a positive finite learning rate");
  checker->Require(train.schedule() == "cosine" || train.schedule() == "constant", "train.schedule",
                   "\"cosine\" or \"constant\"", Quoted(train.schedule()));
  checker->Require(std::isfinite(train.warmup()) && train.warmup() >= 0 && train.warmup() < 1,
                   "train.warmup", "a fraction of the steps in [0, 1)",
                   absl::StrCat(train.warmup()));
  checker->Require(std::isfinite(train.weight_decay()) && train.weight_decay() >= 0,
                   "train.weight_decay", "a finite number >= 0",
                   absl::StrCat(train.weight_decay()));
}

void CheckEvalAndResources(const RunConfig& config, RuleChecker* checker) {
  checker->RequirePositive(config.eval().every_tokens(), "eval.every_tokens",
                           "a positive number of tokens");
  checker->RequirePositive(config.eval().val_tokens(), "eval.val_tokens",
                           "a positive number of tokens");
  checker->RequireNonNegative(config.resources().gpus(), "resources.gpus");
  checker->RequireNonNegative(config.resources().cpus(), "resources.cpus");
  checker->RequireNonNegative(config.init().from_run(), "init.from_run");
  checker->RequireNonNegative(config.init().from_artifact(), "init.from_artifact");
  checker->Require(config.init().from_run() == 0 || config.init().from_artifact() == 0,
                   "init.from_artifact", "at most one of init.from_run and init.from_artifact",
                   absl::StrCat(config.init().from_artifact()), {"init.from_run"});
}

}  // namespace

void ApplyRunDefaults(RunConfig* config) {
  scalelab::v1::ModelSpec& model = *config->mutable_model();
  if (model.family().empty()) model.set_family("transformer");
  if (model.vocab_size() == 0) model.set_vocab_size(256);

  scalelab::v1::TrainSpec& train = *config->mutable_train();
  if (train.schedule().empty()) train.set_schedule("cosine");
  if (train.weight_decay() == 0) train.set_weight_decay(0.1);

  scalelab::v1::ResourceSpec& resources = *config->mutable_resources();
  if (resources.gpus() == 0 && resources.cpus() == 0) resources.set_cpus(1);

  scalelab::v1::DataSpec& data = *config->mutable_data();
  if (data.mixture().empty()) {
    for (const auto& [name, folder] : data.sources()) (*data.mutable_mixture())[name] = 1.0;
  }

  scalelab::v1::EvalSpec& eval = *config->mutable_eval();
  if (eval.val_tokens() == 0) eval.set_val_tokens(65536);
  if (eval.every_tokens() == 0) eval.set_every_tokens(train.tokens() / 10);
}

std::vector<FieldError> CheckRunConfig(const RunConfig& config) {
  RuleChecker checker;
  CheckModel(config.model(), &checker);
  CheckData(config.data(), &checker);
  CheckTrain(config.train(), config.model(), &checker);
  CheckEvalAndResources(config, &checker);
  return checker.Take();
}

absl::Status ValidateRunConfig(const RunConfig& config) {
  std::vector<FieldError> errors = CheckRunConfig(config);
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(errors.front().Message());
}

absl::Status ValidateRunSpec(const scalelab::v1::RunSpec& spec) {
  if (absl::Status status = ValidateRunConfig(spec.config()); !status.ok()) return status;
  auto invalid = [](absl::string_view field, absl::string_view expected, absl::string_view got) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, ", got ", got));
  };
  if (spec.kind() != scalelab::v1::RUN_KIND_PRETRAIN) {
    return invalid("kind", "RUN_KIND_PRETRAIN (the only run kind with a loop so far)",
                   scalelab::v1::RunKind_Name(spec.kind()));
  }
  if (spec.attempt() < 1)
    return invalid("attempt", "an integer >= 1", absl::StrCat(spec.attempt()));
  const scalelab::v1::ExecutionSpec& execution = spec.execution();
  if (execution.device() != "cpu" && execution.device() != "cuda") {
    return invalid("execution.device", "\"cpu\" or \"cuda\"", Quoted(execution.device()));
  }
  if (execution.device() == "cuda" && spec.config().resources().gpus() == 0) {
    return invalid("execution.device", "\"cpu\" for a run with resources.gpus 0", "\"cuda\"");
  }
  if (execution.threads() < 1) {
    return invalid("execution.threads", "an integer >= 1", absl::StrCat(execution.threads()));
  }
  for (const std::string& name : SortedKeys(spec.config().data().sources())) {
    const std::string& folder = spec.config().data().sources().at(name);
    if (folder.empty() || folder[0] != '/') {
      return invalid(JoinKey("config.data.sources", name),
                     "an absolute folder (the worker resolves relative ones)", Quoted(folder));
    }
  }
  return absl::OkStatus();
}

}  // namespace scalelab::runspec
