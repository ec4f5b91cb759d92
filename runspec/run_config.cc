#include "runspec/run_config.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
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
                bool pretrain, bool trains, RuleChecker* checker) {
  if (pretrain) {
    checker->RequirePositive(train.tokens(), "train.tokens", "a positive number of tokens");
    checker->RequirePositive(train.batch_tokens(), "train.batch_tokens");
  } else {
    checker->Require(std::isfinite(train.tokens()) && train.tokens() >= 0, "train.tokens",
                     "a number >= 0 (only pretraining reads it)", absl::StrCat(train.tokens()));
    checker->RequireNonNegative(train.batch_tokens(), "train.batch_tokens");
  }
  if (train.batch_tokens() > 0 && model.seq_len() > 0) {
    checker->Require(train.batch_tokens() % model.seq_len() == 0, "train.batch_tokens",
                     absl::StrCat("a multiple of model.seq_len (", model.seq_len(), ")"),
                     absl::StrCat(train.batch_tokens()), {"model.seq_len"});
  }
  if (trains) {
    checker->RequirePositive(train.lr(), "train.lr", "a positive finite learning rate");
  } else {
    checker->Require(std::isfinite(train.lr()) && train.lr() >= 0, "train.lr",
                     "a finite rate >= 0 (an evaluation trains nothing)", absl::StrCat(train.lr()));
  }
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

void CheckEvalAndResources(const RunConfig& config, bool pretrain, RuleChecker* checker) {
  if (pretrain) {
    checker->RequirePositive(config.eval().every_tokens(), "eval.every_tokens",
                             "a positive number of tokens");
    checker->RequirePositive(config.eval().val_tokens(), "eval.val_tokens",
                             "a positive number of tokens");
  }
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
  // A gang (issue 9): its ranks train data-parallel, so the global batch must split over them
  // (execution.world_size is checked again, the same way, when the lease names it).
  const int ranks = config.resources().ranks();
  checker->RequireNonNegative(ranks, "resources.ranks");
  checker->RequireNonNegative(config.resources().ranks_per_node(), "resources.ranks_per_node");
  checker->Require(ranks <= 1 || pretrain, "resources.ranks",
                   "1 for a run that is not pretraining (data parallelism covers pretraining "
                   "only for now)",
                   absl::StrCat(ranks));
  const int64_t seq_len = config.model().seq_len();
  checker->Require(
      ranks <= 1 || seq_len <= 0 || config.train().batch_tokens() % (seq_len * ranks) == 0,
      "train.batch_tokens",
      absl::StrCat("a multiple of model.seq_len x resources.ranks (", seq_len, " x ", ranks, " = ",
                   seq_len * ranks, ": the global batch splits into whole windows per rank)"),
      absl::StrCat(config.train().batch_tokens()), {"resources.ranks"});
  checker->RequireNonNegative(config.init().from_run(), "init.from_run");
  checker->RequireNonNegative(config.init().from_artifact(), "init.from_artifact");
  checker->Require(config.init().from_run() == 0 || config.init().from_artifact() == 0,
                   "init.from_artifact", "at most one of init.from_run and init.from_artifact",
                   absl::StrCat(config.init().from_artifact()), {"init.from_run"});
}

void CheckTaskSet(const scalelab::v1::TaskSetSpec& tasks, const std::string& path, bool required,
                  RuleChecker* checker) {
  const bool named = !tasks.generator().empty() || !tasks.path().empty();
  if (!named) {
    checker->Require(!required, path + ".generator",
                     "a task generator (addition, multiplication, modular, sorting, word) or a "
                     "JSONL file in " +
                         path + ".path",
                     "neither");
    return;
  }
  checker->Require(tasks.generator().empty() || tasks.path().empty(), path + ".path",
                   "at most one of " + path + ".generator and " + path + ".path",
                   Quoted(tasks.path()), {path + ".generator"});
  if (!tasks.generator().empty()) {
    checker->Require(
        IsOneOf(tasks.generator(), {"addition", "multiplication", "modular", "sorting", "word"}),
        path + ".generator", "one of addition, multiplication, modular, sorting, word",
        Quoted(tasks.generator()));
  }
  checker->Require(tasks.name().size() <= 128, path + ".name", "at most 128 bytes",
                   Quoted(tasks.name()));
  checker->RequireNonNegative(tasks.digits(), path + ".digits");
  checker->RequireNonNegative(tasks.modulus(), path + ".modulus");
  checker->RequireNonNegative(tasks.operand_digits(), path + ".operand_digits");
  checker->RequireNonNegative(tasks.length(), path + ".length");
  checker->RequireNonNegative(tasks.max_value(), path + ".max_value");
  checker->RequireNonNegative(tasks.steps(), path + ".steps");
  checker->RequireNonNegative(tasks.seed(), path + ".seed");
  checker->Require(
      tasks.extract().empty() ||
          IsOneOf(tasks.extract(), {"whole", "hashes", "answer_is", "last_number", "pattern"}),
      path + ".extract", "one of whole, hashes, answer_is, last_number, pattern (or empty)",
      Quoted(tasks.extract()));
  checker->Require(tasks.compare().empty() || IsOneOf(tasks.compare(), {"exact", "numeric"}),
                   path + ".compare", "\"exact\" or \"numeric\" (or empty)",
                   Quoted(tasks.compare()));
  checker->Require((tasks.extract() == "pattern") == !tasks.pattern().empty(), path + ".pattern",
                   "a regex exactly when " + path + ".extract is \"pattern\"",
                   Quoted(tasks.pattern()), {path + ".extract"});
}

// eval.tasks: `required` for kind EVAL; in SFT and GRPO runs it is optional (periodic pass@k)
// and an unset task set means the run's own.
void CheckTaskEval(const scalelab::v1::TaskEvalSpec& eval, bool required, bool has_run_tasks,
                   RuleChecker* checker) {
  const bool has_tasks = !eval.tasks().generator().empty() || !eval.tasks().path().empty();
  if (required && eval.suite().empty()) {
    CheckTaskSet(eval.tasks(), "eval.tasks.tasks", true, checker);
  } else if (has_tasks) {
    CheckTaskSet(eval.tasks(), "eval.tasks.tasks", false, checker);
  }
  (void)has_run_tasks;
  checker->Require(IsOneOf(eval.split(), {"train", "held_out", "test"}), "eval.tasks.split",
                   "\"test\", \"held_out\" or \"train\"", Quoted(eval.split()));
  checker->RequirePositive(eval.problems(), "eval.tasks.problems");
  checker->Require(eval.samples() >= 1 && eval.samples() <= 1024, "eval.tasks.samples",
                   "an integer in [1, 1024]", absl::StrCat(eval.samples()));
  for (int32_t k : eval.k()) {
    checker->Require(k >= 1 && k <= eval.samples(), "eval.tasks.k",
                     absl::StrCat("values in [1, eval.tasks.samples (", eval.samples(), ")]"),
                     absl::StrCat(k), {"eval.tasks.samples"});
  }
  checker->Require(std::isfinite(eval.temperature()) && eval.temperature() > 0,
                   "eval.tasks.temperature", "a positive finite temperature",
                   absl::StrCat(eval.temperature()));
  checker->Require(!eval.greedy() || eval.samples() == 1, "eval.tasks.samples",
                   "1 with eval.tasks.greedy (greedy decoding draws one completion)",
                   absl::StrCat(eval.samples()), {"eval.tasks.greedy"});
  checker->Require(eval.max_new_tokens() >= 1 && eval.max_new_tokens() <= 4096,
                   "eval.tasks.max_new_tokens", "an integer in [1, 4096]",
                   absl::StrCat(eval.max_new_tokens()));
  checker->Require(eval.bootstrap() >= 0 && eval.bootstrap() <= 100000, "eval.tasks.bootstrap",
                   "an integer in [0, 100000]", absl::StrCat(eval.bootstrap()));
  checker->RequireNonNegative(eval.every_steps(), "eval.tasks.every_steps");
  checker->RequireNonNegative(eval.seed(), "eval.tasks.seed");
}

void CheckSft(const scalelab::v1::SftSpec& sft, const scalelab::v1::ModelSpec& model,
              RuleChecker* checker) {
  CheckTaskSet(sft.tasks(), "sft.tasks", true, checker);
  checker->RequirePositive(sft.unique_examples(), "sft.unique_examples");
  checker->Require(std::isfinite(sft.epochs()) && sft.epochs() > 0 && sft.epochs() <= 1000,
                   "sft.epochs", "a number in (0, 1000]", absl::StrCat(sft.epochs()));
  checker->RequirePositive(sft.batch_examples(), "sft.batch_examples");
  checker->RequireNonNegative(sft.min_example_tokens(), "sft.min_example_tokens");
  checker->Require(sft.max_example_tokens() >= 2 && sft.max_example_tokens() <= model.seq_len(),
                   "sft.max_example_tokens",
                   absl::StrCat("an integer in [2, model.seq_len (", model.seq_len(), ")]"),
                   absl::StrCat(sft.max_example_tokens()), {"model.seq_len"});
  checker->Require(sft.min_example_tokens() <= sft.max_example_tokens(), "sft.min_example_tokens",
                   absl::StrCat("at most sft.max_example_tokens (", sft.max_example_tokens(), ")"),
                   absl::StrCat(sft.min_example_tokens()), {"sft.max_example_tokens"});
  checker->RequirePositive(sft.held_out_examples(), "sft.held_out_examples");
  checker->RequireNonNegative(sft.eval_every_steps(), "sft.eval_every_steps");
}

void CheckGrpo(const scalelab::v1::GrpoSpec& grpo, RuleChecker* checker) {
  CheckTaskSet(grpo.tasks(), "grpo.tasks", true, checker);
  checker->RequirePositive(grpo.steps(), "grpo.steps");
  checker->RequirePositive(grpo.prompts_per_step(), "grpo.prompts_per_step");
  checker->Require(grpo.group_size() >= 2 && grpo.group_size() <= 1024, "grpo.group_size",
                   "an integer in [2, 1024] (advantages compare completions of one prompt)",
                   absl::StrCat(grpo.group_size()));
  checker->RequirePositive(grpo.passes(), "grpo.passes");
  checker->Require(std::isfinite(grpo.clip_low()) && grpo.clip_low() > 0 && grpo.clip_low() < 1,
                   "grpo.clip_low", "a number in (0, 1)", absl::StrCat(grpo.clip_low()));
  checker->Require(std::isfinite(grpo.clip_high()) && grpo.clip_high() > 0, "grpo.clip_high",
                   "a positive finite number", absl::StrCat(grpo.clip_high()));
  checker->Require(IsOneOf(grpo.advantage(), {"std", "mean"}), "grpo.advantage",
                   "\"std\" or \"mean\"", Quoted(grpo.advantage()));
  checker->Require(IsOneOf(grpo.loss_norm(), {"sequence", "token", "fixed"}), "grpo.loss_norm",
                   "\"sequence\", \"token\" or \"fixed\"", Quoted(grpo.loss_norm()));
  checker->Require(std::isfinite(grpo.beta()) && grpo.beta() >= 0, "grpo.beta",
                   "a finite number >= 0", absl::StrCat(grpo.beta()));
  checker->Require(std::isfinite(grpo.temperature()) && grpo.temperature() > 0, "grpo.temperature",
                   "a positive finite temperature", absl::StrCat(grpo.temperature()));
  checker->Require(grpo.max_new_tokens() >= 1 && grpo.max_new_tokens() <= 4096,
                   "grpo.max_new_tokens", "an integer in [1, 4096]",
                   absl::StrCat(grpo.max_new_tokens()));
  checker->Require(std::isfinite(grpo.eps()) && grpo.eps() > 0, "grpo.eps",
                   "a positive finite number", absl::StrCat(grpo.eps()));
  checker->RequirePositive(grpo.probe_problems(), "grpo.probe_problems");
}

void CheckLayerSkip(const scalelab::v1::LayerSkipSpec& layerskip,
                    const scalelab::v1::ModelSpec& model, RuleChecker* checker) {
  const bool on = layerskip.max_dropout() != 0 || layerskip.exit_scale() != 0;
  if (!on) return;
  checker->Require(model.family() == "transformer", "train.layerskip",
                   "model.family \"transformer\" (LayerSkip skips whole transformer blocks)",
                   Quoted(model.family()), {"model.family"});
  checker->Require(std::isfinite(layerskip.max_dropout()) && layerskip.max_dropout() >= 0 &&
                       layerskip.max_dropout() < 1,
                   "train.layerskip.max_dropout", "a rate in [0, 1)",
                   absl::StrCat(layerskip.max_dropout()));
  checker->Require(std::isfinite(layerskip.exit_scale()) && layerskip.exit_scale() >= 0,
                   "train.layerskip.exit_scale", "a finite number >= 0",
                   absl::StrCat(layerskip.exit_scale()));
  checker->Require(IsOneOf(layerskip.curriculum(), {"all", "rotational", "gradual"}),
                   "train.layerskip.curriculum", "\"all\", \"rotational\" or \"gradual\"",
                   Quoted(layerskip.curriculum()));
  checker->RequirePositive(layerskip.rotation(), "train.layerskip.rotation");
}

}  // namespace

namespace {

void ApplyTaskSetDefaults(scalelab::v1::TaskSetSpec* tasks) {
  if (tasks->generator().empty() && tasks->path().empty()) return;
  if (tasks->seed() == 0) tasks->set_seed(1);
}

void ApplyTaskEvalDefaults(scalelab::v1::TaskEvalSpec* eval) {
  ApplyTaskSetDefaults(eval->mutable_tasks());
  if (eval->split().empty()) eval->set_split("test");
  if (eval->problems() == 0) eval->set_problems(128);
  if (eval->samples() == 0) eval->set_samples(eval->greedy() ? 1 : 8);
  if (eval->temperature() == 0) eval->set_temperature(1.0);
  if (eval->max_new_tokens() == 0) eval->set_max_new_tokens(16);
  if (eval->bootstrap() == 0) eval->set_bootstrap(1000);
}

}  // namespace

// Defaults that derive from another field (n_kv_heads from n_heads, micro_batch_tokens from
// batch_tokens, eval.position_buckets from seq_len) are NOT written here: the manifest's base gets
// its defaults before the grid applies its points, so a derived value written then would go stale
// when the grid changes its source field. They stay 0 and the trainer resolves them
// (model/train_plan.cc and the model families).
void ApplyRunDefaults(RunConfig* config, scalelab::v1::RunKind kind) {
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
  if (eval.every_tokens() == 0 && kind == scalelab::v1::RUN_KIND_PRETRAIN) {
    eval.set_every_tokens(train.tokens() / 10);
  }
  if (kind != scalelab::v1::RUN_KIND_PRETRAIN) ApplyTaskEvalDefaults(eval.mutable_tasks());
  if (kind == scalelab::v1::RUN_KIND_SFT) {
    scalelab::v1::SftSpec& sft = *config->mutable_sft();
    ApplyTaskSetDefaults(sft.mutable_tasks());
    if (sft.unique_examples() == 0) sft.set_unique_examples(1024);
    if (sft.epochs() == 0) sft.set_epochs(1);
    if (sft.batch_examples() == 0) sft.set_batch_examples(32);
    if (sft.max_example_tokens() == 0) sft.set_max_example_tokens(model.seq_len());
    if (sft.held_out_examples() == 0) sft.set_held_out_examples(256);
  }
  if (kind == scalelab::v1::RUN_KIND_GRPO) {
    scalelab::v1::GrpoSpec& grpo = *config->mutable_grpo();
    ApplyTaskSetDefaults(grpo.mutable_tasks());
    if (grpo.prompts_per_step() == 0) grpo.set_prompts_per_step(8);
    if (grpo.group_size() == 0) grpo.set_group_size(8);
    if (grpo.passes() == 0) grpo.set_passes(1);
    if (grpo.clip_low() == 0) grpo.set_clip_low(0.2);
    if (grpo.clip_high() == 0) grpo.set_clip_high(grpo.clip_low());
    if (grpo.advantage().empty()) grpo.set_advantage("std");
    if (grpo.loss_norm().empty()) grpo.set_loss_norm("sequence");
    if (grpo.temperature() == 0) grpo.set_temperature(1.0);
    if (grpo.max_new_tokens() == 0) grpo.set_max_new_tokens(16);
    if (grpo.eps() == 0) grpo.set_eps(1e-6);
    if (grpo.probe_problems() == 0) grpo.set_probe_problems(64);
  }
  if (train.has_layerskip()) {
    scalelab::v1::LayerSkipSpec& layerskip = *train.mutable_layerskip();
    if (layerskip.curriculum().empty()) layerskip.set_curriculum("all");
    if (layerskip.rotation() == 0) layerskip.set_rotation(2);
  }
  if (eval.recall_pairs() == 0) eval.set_recall_pairs(8);
  if (eval.recall_examples() == 0) eval.set_recall_examples(64);

  scalelab::v1::CheckpointSpec& checkpoint = *config->mutable_checkpoint();
  if (checkpoint.every_steps() == 0 && checkpoint.every_s() == 0) checkpoint.set_every_s(600);
  if (checkpoint.keep() == 0) checkpoint.set_keep(2);
}

std::vector<FieldError> CheckRunConfig(const RunConfig& config, scalelab::v1::RunKind kind) {
  RuleChecker checker;
  const bool pretrain = kind == scalelab::v1::RUN_KIND_PRETRAIN;
  checker.Require(kind == scalelab::v1::RUN_KIND_PRETRAIN || kind == scalelab::v1::RUN_KIND_SFT ||
                      kind == scalelab::v1::RUN_KIND_GRPO || kind == scalelab::v1::RUN_KIND_EVAL,
                  "kind", "one of pretrain, sft, grpo, eval", scalelab::v1::RunKind_Name(kind));
  CheckModel(config.model(), &checker);
  // Pretraining reads token shards; the other kinds read task sets, and data only when given.
  if (pretrain || !config.data().sources().empty()) CheckData(config.data(), &checker);
  CheckTrain(config.train(), config.model(), pretrain, kind != scalelab::v1::RUN_KIND_EVAL,
             &checker);
  CheckLayerSkip(config.train().layerskip(), config.model(), &checker);
  // Only the pretraining loop trains with layer dropout and early-exit losses.
  checker.Require(pretrain || (config.train().layerskip().max_dropout() == 0 &&
                               config.train().layerskip().exit_scale() == 0),
                  "train.layerskip", "unset outside pretraining (only that loop applies it)", "set",
                  {"kind"});
  CheckEvalAndResources(config, pretrain, &checker);
  if (kind == scalelab::v1::RUN_KIND_SFT) CheckSft(config.sft(), config.model(), &checker);
  if (kind == scalelab::v1::RUN_KIND_GRPO) CheckGrpo(config.grpo(), &checker);
  if (!pretrain) {
    CheckTaskEval(config.eval().tasks(), kind == scalelab::v1::RUN_KIND_EVAL,
                  kind != scalelab::v1::RUN_KIND_EVAL, &checker);
  }
  if (kind == scalelab::v1::RUN_KIND_GRPO || kind == scalelab::v1::RUN_KIND_EVAL) {
    checker.Require(config.init().from_run() > 0 || config.init().from_artifact() > 0,
                    "init.from_run",
                    "starting weights (init.from_run or init.from_artifact; a pipeline stage "
                    "sets it to the parent run)",
                    "none");
  }
  return checker.Take();
}

absl::Status ValidateRunConfig(const RunConfig& config, scalelab::v1::RunKind kind) {
  std::vector<FieldError> errors = CheckRunConfig(config, kind);
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(errors.front().Message());
}

namespace {

// The data-parallel fields of execution (model/dist.h). world_size 0 and 1 both mean one process.
absl::Status ValidateDataParallel(const scalelab::v1::RunSpec& spec) {
  const scalelab::v1::ExecutionSpec& execution = spec.execution();
  auto invalid = [](absl::string_view field, absl::string_view expected, absl::string_view got) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, ", got ", got));
  };
  if (execution.world_size() < 0) {
    return invalid("execution.world_size", "an integer >= 0 (0 or 1: one process)",
                   absl::StrCat(execution.world_size()));
  }
  const int world_size = std::max(1, execution.world_size());
  if (execution.rank() < 0 || execution.rank() >= world_size) {
    return invalid("execution.rank",
                   absl::StrCat("0..", world_size - 1, " (execution.world_size ", world_size, ")"),
                   absl::StrCat(execution.rank()));
  }
  if (execution.local_rank() < 0) {
    return invalid("execution.local_rank", "an integer >= 0", absl::StrCat(execution.local_rank()));
  }
  const std::string& backend = execution.backend();
  if (backend != "" && backend != "gloo" && backend != "nccl") {
    return invalid("execution.backend", "\"gloo\", \"nccl\" or \"\" (by device)", Quoted(backend));
  }
  if (backend == "nccl" && execution.device() != "cuda") {
    return invalid("execution.backend", "\"gloo\" or \"\" for execution.device \"cpu\"",
                   "\"nccl\"");
  }
  if (world_size == 1) return absl::OkStatus();
  if (spec.kind() != scalelab::v1::RUN_KIND_PRETRAIN) {
    return invalid("execution.world_size",
                   absl::StrCat("1 for a run of kind ", scalelab::v1::RunKind_Name(spec.kind()),
                                " (data parallelism covers pretraining only for now)"),
                   absl::StrCat(world_size));
  }
  const std::string& rendezvous = execution.rendezvous();
  const size_t colon = rendezvous.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(rendezvous.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return invalid("execution.rendezvous",
                   absl::StrCat("\"host:port\" of rank 0 with a port in 1..65535 (world_size ",
                                world_size, ")"),
                   Quoted(rendezvous));
  }
  // Every rank takes batch_size / world_size whole windows of each global batch.
  const scalelab::v1::TrainSpec& train = spec.config().train();
  const int64_t seq_len = spec.config().model().seq_len();
  if (seq_len > 0 && train.batch_tokens() % (seq_len * world_size) != 0) {
    return invalid("train.batch_tokens",
                   absl::StrCat("a multiple of model.seq_len x execution.world_size (", seq_len,
                                " x ", world_size, " = ", seq_len * world_size,
                                ": the global batch splits into whole windows per rank)"),
                   absl::StrCat(train.batch_tokens()));
  }
  const int64_t rank_tokens = train.batch_tokens() / world_size;
  if (train.micro_batch_tokens() > 0 && rank_tokens % train.micro_batch_tokens() != 0) {
    return invalid("train.micro_batch_tokens",
                   absl::StrCat("a divisor of each rank's share of train.batch_tokens (",
                                train.batch_tokens(), " / ", world_size, " = ", rank_tokens, ")"),
                   absl::StrCat(train.micro_batch_tokens()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateRunSpec(const scalelab::v1::RunSpec& spec) {
  if (absl::Status status = ValidateRunConfig(spec.config(), spec.kind()); !status.ok()) {
    return status;
  }
  auto invalid = [](absl::string_view field, absl::string_view expected, absl::string_view got) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, ", got ", got));
  };
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
  if (absl::Status status = ValidateDataParallel(spec); !status.ok()) return status;
  for (const std::string& name : SortedKeys(spec.config().data().sources())) {
    const std::string& folder = spec.config().data().sources().at(name);
    if (folder.empty() || folder[0] != '/') {
      return invalid(JoinKey("config.data.sources", name),
                     "an absolute folder (the worker resolves relative ones)", Quoted(folder));
    }
  }
  // Task files as data sources: empty (not used) or absolute.
  const scalelab::v1::RunConfig& config = spec.config();
  const std::pair<const char*, const std::string*> task_files[] = {
      {"config.sft.tasks.path", &config.sft().tasks().path()},
      {"config.grpo.tasks.path", &config.grpo().tasks().path()},
      {"config.eval.tasks.tasks.path", &config.eval().tasks().tasks().path()},
      {"config.eval.tasks.suite", &config.eval().tasks().suite()}};
  for (const auto& [field, path] : task_files) {
    if (!path->empty() && (*path)[0] != '/') {
      return invalid(field, "an absolute file (the worker resolves relative ones)", Quoted(*path));
    }
  }
  return absl::OkStatus();
}

}  // namespace scalelab::runspec
