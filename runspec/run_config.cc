#include "runspec/run_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

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

bool IsOneOf(const std::string& value, std::initializer_list<const char*> choices) {
  for (const char* choice : choices) {
    if (value == choice) return true;
  }
  return false;
}

void CheckSsm(const scalelab::v1::ModelSpec& model, RuleChecker* checker) {
  const scalelab::v1::SsmSpec& ssm = model.ssm();
  checker->RequirePositive(ssm.d_state(), "model.ssm.d_state");
  checker->RequirePositive(ssm.head_dim(), "model.ssm.head_dim");
  checker->RequirePositive(ssm.expand(), "model.ssm.expand");
  checker->RequirePositive(ssm.d_conv(), "model.ssm.d_conv");
  checker->RequirePositive(ssm.chunk(), "model.ssm.chunk");
}

void CheckHybrid(const scalelab::v1::ModelSpec& model, RuleChecker* checker) {
  const scalelab::v1::HybridSpec& hybrid = model.hybrid();
  checker->Require(IsOneOf(hybrid.mode(), {"sequential", "parallel"}), "model.hybrid.mode",
                   "\"sequential\" or \"parallel\"", Quoted(hybrid.mode()));
  if (hybrid.mode() == "sequential" && !hybrid.pattern().empty()) {
    bool letters_ok = true;
    for (char letter : hybrid.pattern())
      letters_ok = letters_ok && (letter == 'A' || letter == 'M');
    checker->Require(letters_ok, "model.hybrid.pattern",
                     "one letter per layer, A (attention) or M (Mamba-2)",
                     Quoted(hybrid.pattern()));
    checker->Require(static_cast<int64_t>(hybrid.pattern().size()) == model.n_layers(),
                     "model.hybrid.pattern",
                     absl::StrCat(model.n_layers(), " letters (model.n_layers)"),
                     absl::StrCat(hybrid.pattern().size(), " letters"), {"model.n_layers"});
  }
  checker->Require(
      std::isfinite(hybrid.attn_ratio()) && hybrid.attn_ratio() > 0 && hybrid.attn_ratio() <= 1,
      "model.hybrid.attn_ratio", "a fraction in (0, 1]", absl::StrCat(hybrid.attn_ratio()));
  checker->Require(std::isfinite(hybrid.attn_fraction()) && hybrid.attn_fraction() > 0 &&
                       hybrid.attn_fraction() < 1,
                   "model.hybrid.attn_fraction", "a fraction in (0, 1)",
                   absl::StrCat(hybrid.attn_fraction()));
  checker->Require(IsOneOf(hybrid.fuse(), {"mean", "concat"}), "model.hybrid.fuse",
                   "\"mean\" or \"concat\"", Quoted(hybrid.fuse()));
}

void CheckModel(const scalelab::v1::ModelSpec& model, RuleChecker* checker) {
  checker->Require(IsOneOf(model.family(), {"transformer", "mamba2", "hybrid"}), "model.family",
                   "\"transformer\", \"mamba2\" or \"hybrid\"", Quoted(model.family()));
  checker->RequirePositive(model.d_model(), "model.d_model");
  checker->RequirePositive(model.n_layers(), "model.n_layers");
  checker->RequirePositive(model.seq_len(), "model.seq_len");
  // Only families with attention read the head counts (a pure Mamba-2 model may leave them 0).
  const bool has_attention = model.family() != "mamba2";
  if (has_attention) checker->RequirePositive(model.n_heads(), "model.n_heads");
  if (model.family() == "hybrid" && model.hybrid().mode() == "parallel") {
    // The parallel hybrid splits the heads between its two branches.
    checker->Require(model.n_heads() >= 2, "model.n_heads",
                     "at least 2 for model.hybrid.mode \"parallel\"", absl::StrCat(model.n_heads()),
                     {"model.hybrid.mode"});
  }
  if (has_attention && model.d_model() > 0 && model.n_heads() > 0) {
    checker->Require(model.d_model() % model.n_heads() == 0, "model.d_model",
                     absl::StrCat("a multiple of model.n_heads (", model.n_heads(), ")"),
                     absl::StrCat(model.d_model()), {"model.n_heads"});
    // Rotary embeddings rotate pairs of channels: every head needs an even width.
    checker->Require(
        model.d_model() % model.n_heads() != 0 || (model.d_model() / model.n_heads()) % 2 == 0,
        "model.d_model",
        absl::StrCat("an even head width d_model / n_heads (n_heads ", model.n_heads(), ")"),
        absl::StrCat(model.d_model()), {"model.n_heads"});
  }
  checker->RequireNonNegative(model.n_kv_heads(), "model.n_kv_heads");
  if (has_attention && model.n_kv_heads() > 0 && model.n_heads() > 0) {
    checker->Require(model.n_heads() % model.n_kv_heads() == 0, "model.n_kv_heads",
                     absl::StrCat("a divisor of model.n_heads (", model.n_heads(), ")"),
                     absl::StrCat(model.n_kv_heads()), {"model.n_heads"});
  }
  checker->Require(model.d_ff() >= 0, "model.d_ff",
                   "an integer >= 0 (0 means 8/3 * d_model, rounded up to a multiple of 8)",
                   absl::StrCat(model.d_ff()));
  checker->Require(std::isfinite(model.rope_theta()) && model.rope_theta() > 1, "model.rope_theta",
                   "a finite number > 1", absl::StrCat(model.rope_theta()));
  // Token shards hold uint16 or uint32 tokens; every vocabulary covers the bytes.
  checker->Require(model.vocab_size() >= 256 && model.vocab_size() <= 1 << 20, "model.vocab_size",
                   "an integer in [256, 1048576]", absl::StrCat(model.vocab_size()));
  if (model.family() == "mamba2" || model.family() == "hybrid") CheckSsm(model, checker);
  if (model.family() == "hybrid") CheckHybrid(model, checker);
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
  checker->RequirePositive(data.mixture_window(), "data.mixture_window");
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
  checker->Require(IsOneOf(train.schedule(), {"cosine", "constant", "wsd"}), "train.schedule",
                   "\"cosine\", \"constant\" or \"wsd\"", Quoted(train.schedule()));
  checker->Require(std::isfinite(train.warmup()) && train.warmup() >= 0 && train.warmup() < 1,
                   "train.warmup", "a fraction of the steps in [0, 1)",
                   absl::StrCat(train.warmup()));
  checker->Require(std::isfinite(train.decay()) && train.decay() > 0 && train.decay() <= 1,
                   "train.decay", "a fraction of the steps in (0, 1]", absl::StrCat(train.decay()));
  if (train.schedule() == "wsd" && std::isfinite(train.decay()) && std::isfinite(train.warmup())) {
    checker->Require(train.warmup() + train.decay() <= 1, "train.decay",
                     absl::StrCat("at most 1 - train.warmup (", 1 - train.warmup(), ")"),
                     absl::StrCat(train.decay()), {"train.warmup"});
  }
  checker->Require(std::isfinite(train.final_lr()) && train.final_lr() > 0 && train.final_lr() <= 1,
                   "train.final_lr", "a fraction of the peak rate in (0, 1]",
                   absl::StrCat(train.final_lr()));
  checker->Require(std::isfinite(train.weight_decay()) && train.weight_decay() >= 0,
                   "train.weight_decay", "a finite number >= 0",
                   absl::StrCat(train.weight_decay()));
  checker->RequirePositive(train.grad_clip(), "train.grad_clip", "a positive finite norm");
  checker->RequireNonNegative(train.micro_batch_tokens(), "train.micro_batch_tokens");
  if (train.micro_batch_tokens() > 0 && model.seq_len() > 0) {
    checker->Require(train.micro_batch_tokens() % model.seq_len() == 0, "train.micro_batch_tokens",
                     absl::StrCat("a multiple of model.seq_len (", model.seq_len(), ")"),
                     absl::StrCat(train.micro_batch_tokens()), {"model.seq_len"});
  }
  if (train.micro_batch_tokens() > 0 && train.batch_tokens() > 0) {
    checker->Require(
        train.batch_tokens() % train.micro_batch_tokens() == 0, "train.batch_tokens",
        absl::StrCat("a multiple of train.micro_batch_tokens (", train.micro_batch_tokens(), ")"),
        absl::StrCat(train.batch_tokens()), {"train.micro_batch_tokens"});
  }
  checker->Require(IsOneOf(train.precision(), {"fp32", "bf16"}), "train.precision",
                   "\"fp32\" or \"bf16\"", Quoted(train.precision()));
  checker->Require(std::isfinite(train.divergence_factor()) && train.divergence_factor() > 1,
                   "train.divergence_factor", "a finite number > 1",
                   absl::StrCat(train.divergence_factor()));
}

void CheckEvalAndResources(const RunConfig& config, RuleChecker* checker) {
  checker->RequirePositive(config.eval().every_tokens(), "eval.every_tokens",
                           "a positive number of tokens");
  checker->RequirePositive(config.eval().val_tokens(), "eval.val_tokens",
                           "a positive number of tokens");
  checker->Require(config.eval().position_buckets() >= 0 &&
                       config.eval().position_buckets() <= config.model().seq_len(),
                   "eval.position_buckets",
                   absl::StrCat("an integer in [0, model.seq_len (", config.model().seq_len(),
                                ")] (0 = min(4, seq_len))"),
                   absl::StrCat(config.eval().position_buckets()), {"model.seq_len"});
  for (int32_t length : config.eval().recall_lengths()) {
    // Each example needs its pairs (3 tokens each), a separator and the query (2 tokens).
    const int64_t needed = 3 * static_cast<int64_t>(config.eval().recall_pairs()) + 3;
    checker->Require(length >= needed && length <= 1 << 16, "eval.recall_lengths",
                     absl::StrCat("context lengths in [", needed, ", 65536] (3 * recall_pairs + 3",
                                  " at least)"),
                     absl::StrCat(length), {"eval.recall_pairs"});
  }
  checker->RequirePositive(config.eval().recall_pairs(), "eval.recall_pairs");
  checker->RequirePositive(config.eval().recall_examples(), "eval.recall_examples");
  checker->RequireNonNegative(config.checkpoint().every_steps(), "checkpoint.every_steps");
  checker->Require(
      std::isfinite(config.checkpoint().every_s()) && config.checkpoint().every_s() >= 0,
      "checkpoint.every_s", "a number of seconds >= 0",
      absl::StrCat(config.checkpoint().every_s()));
  checker->RequirePositive(config.checkpoint().keep(), "checkpoint.keep");
  checker->RequireNonNegative(config.resources().gpus(), "resources.gpus");
  checker->Require(config.train().precision() != "bf16" || config.resources().gpus() > 0,
                   "train.precision",
                   "\"fp32\" for a run with resources.gpus 0 (bf16 autocast is CUDA-only)",
                   "\"bf16\"", {"resources.gpus"});
  checker->RequireNonNegative(config.resources().cpus(), "resources.cpus");
  checker->RequireNonNegative(config.init().from_run(), "init.from_run");
  checker->RequireNonNegative(config.init().from_artifact(), "init.from_artifact");
  checker->Require(config.init().from_run() == 0 || config.init().from_artifact() == 0,
                   "init.from_artifact", "at most one of init.from_run and init.from_artifact",
                   absl::StrCat(config.init().from_artifact()), {"init.from_run"});
}

}  // namespace

// Defaults that derive from another field (n_kv_heads from n_heads, micro_batch_tokens from
// batch_tokens, eval.position_buckets from seq_len) are NOT written here: the manifest's base gets
// its defaults before the grid applies its points, so a derived value written then would go stale
// when the grid changes its source field. They stay 0 and the trainer resolves them
// (model/train_plan.cc and the model families).
void ApplyRunDefaults(RunConfig* config) {
  scalelab::v1::ModelSpec& model = *config->mutable_model();
  if (model.family().empty()) model.set_family("transformer");
  if (model.vocab_size() == 0) model.set_vocab_size(256);
  if (model.rope_theta() == 0) model.set_rope_theta(10000);
  // Family-specific sections are filled only where the family reads them, so a Transformer's
  // stored config does not carry SSM settings it ignores.
  if (model.family() == "mamba2" || model.family() == "hybrid") {
    scalelab::v1::SsmSpec& ssm = *model.mutable_ssm();
    if (ssm.d_state() == 0) ssm.set_d_state(16);
    if (ssm.head_dim() == 0) ssm.set_head_dim(16);
    if (ssm.expand() == 0) ssm.set_expand(2);
    if (ssm.d_conv() == 0) ssm.set_d_conv(4);
    if (ssm.chunk() == 0) ssm.set_chunk(64);
  }
  if (model.family() == "hybrid") {
    scalelab::v1::HybridSpec& hybrid = *model.mutable_hybrid();
    if (hybrid.mode().empty()) hybrid.set_mode("sequential");
    if (hybrid.attn_ratio() == 0) hybrid.set_attn_ratio(0.25);
    if (hybrid.attn_fraction() == 0) hybrid.set_attn_fraction(0.5);
    if (hybrid.fuse().empty()) hybrid.set_fuse("mean");
  }

  scalelab::v1::TrainSpec& train = *config->mutable_train();
  if (train.schedule().empty()) train.set_schedule("cosine");
  if (train.weight_decay() == 0) train.set_weight_decay(0.1);
  if (train.decay() == 0) train.set_decay(0.2);
  if (train.final_lr() == 0) train.set_final_lr(0.1);
  if (train.grad_clip() == 0) train.set_grad_clip(1.0);
  if (train.precision().empty()) train.set_precision("fp32");
  if (train.divergence_factor() == 0) train.set_divergence_factor(3.0);

  scalelab::v1::ResourceSpec& resources = *config->mutable_resources();
  if (resources.gpus() == 0 && resources.cpus() == 0) resources.set_cpus(1);

  scalelab::v1::DataSpec& data = *config->mutable_data();
  if (data.mixture().empty()) {
    for (const auto& [name, folder] : data.sources()) (*data.mutable_mixture())[name] = 1.0;
  }
  if (data.mixture_window() == 0) data.set_mixture_window(1);

  scalelab::v1::EvalSpec& eval = *config->mutable_eval();
  if (eval.val_tokens() == 0) eval.set_val_tokens(65536);
  if (eval.every_tokens() == 0) eval.set_every_tokens(train.tokens() / 10);
  if (eval.recall_pairs() == 0) eval.set_recall_pairs(8);
  if (eval.recall_examples() == 0) eval.set_recall_examples(64);

  scalelab::v1::CheckpointSpec& checkpoint = *config->mutable_checkpoint();
  if (checkpoint.every_steps() == 0 && checkpoint.every_s() == 0) checkpoint.set_every_s(600);
  if (checkpoint.keep() == 0) checkpoint.set_keep(2);
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
