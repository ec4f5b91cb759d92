#include "model/generation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/generation_internal.h"
#include "model/mix_seed.h"
#include "model/ops.h"
#include "model/registry.h"

namespace scalelab::model {
namespace {

// One token from the logits row [V] (float, CPU): temperature, then top-k, then top-p, then a
// draw. Greedy skips the generator entirely so it cannot be perturbed by the seed.
int64_t SampleToken(const torch::Tensor& logits, const GenerateOptions& options,
                    at::Generator& generator) {
  if (options.temperature == 0) return logits.argmax().item<int64_t>();
  torch::Tensor scaled = logits.to(torch::kFloat64) / options.temperature;
  const int64_t vocab = scaled.size(0);
  if (options.top_k > 0 && options.top_k < vocab) {
    const torch::Tensor kth = std::get<0>(scaled.topk(options.top_k)).select(0, -1);
    scaled = scaled.masked_fill(scaled < kth, -std::numeric_limits<double>::infinity());
  }
  torch::Tensor probs = torch::softmax(scaled, 0);
  if (options.top_p < 1) {
    auto [sorted, order] = probs.sort(/*dim=*/0, /*descending=*/true);
    // A token stays when the mass of the tokens ranked above it is still short of top_p; that
    // keeps the smallest prefix reaching top_p and always the most likely token.
    const torch::Tensor mass_before = sorted.cumsum(0) - sorted;
    const torch::Tensor drop_sorted = mass_before >= options.top_p;
    const torch::Tensor drop = torch::zeros_like(drop_sorted).scatter(0, order, drop_sorted);
    probs = probs.masked_fill(drop, 0);
  }
  return torch::multinomial(probs, 1, /*replacement=*/false, generator).item<int64_t>();
}

// Prompts of one length, generated together.
class GroupGenerator {
 public:
  GroupGenerator(CausalLM& model, const GenerateOptions& options, torch::Device device)
      : model_(model), options_(options), device_(device) {}

  // Fills outputs[i] for every i in `indices`; all prompts[i] have the same length.
  absl::Status Run(const std::vector<std::vector<int64_t>>& prompts,
                   const std::vector<size_t>& indices, std::vector<Generation>& outputs) {
    const int64_t batch = static_cast<int64_t>(indices.size());
    const int64_t prompt_len = static_cast<int64_t>(prompts[indices.front()].size());
    std::vector<at::Generator> generators;
    std::vector<bool> finished(indices.size(), false);
    std::vector<int64_t> generated(indices.size(), 0);
    for (size_t row = 0; row < indices.size(); ++row) {
      generators.push_back(at::make_generator<at::CPUGeneratorImpl>(
          MixSeed(options_.seed, static_cast<uint64_t>(indices[row]))));
      Generation& output = outputs[indices[row]];
      if (options_.max_new_tokens == 0) {
        output.finish_reason = FinishReason::kLength;
        finished[row] = true;
      } else if (prompt_len >= model_.MaxSeqLen()) {
        output.finish_reason = FinishReason::kContext;
        finished[row] = true;
      }
    }
    if (std::all_of(finished.begin(), finished.end(), [](bool done) { return done; })) {
      return absl::OkStatus();
    }

    torch::Tensor sequence = torch::empty({batch, prompt_len}, torch::kLong);
    for (int64_t row = 0; row < batch; ++row) {
      const std::vector<int64_t>& prompt = prompts[indices[row]];
      std::copy(prompt.begin(), prompt.end(), sequence[row].data_ptr<int64_t>());
    }
    sequence = sequence.to(device_);
    InferenceState state;
    if (options_.use_cache) state = model_.NewInferenceState(batch);
    torch::Tensor step_input = sequence;
    for (int64_t length = prompt_len;; ++length) {
      torch::Tensor logits;
      if (options_.use_cache) {
        absl::StatusOr<torch::Tensor> step = model_.ForwardStep(step_input, state);
        if (!step.ok()) return step.status();
        logits = *step;
      } else {
        logits = model_.forward(sequence);
      }
      const torch::Tensor last =
          logits.select(1, logits.size(1) - 1).to(torch::kCPU, torch::kFloat32);
      // Finished rows keep being fed (their last token) so the batch stays rectangular; what
      // the model predicts for them is ignored.
      std::vector<int64_t> next(indices.size());
      for (size_t row = 0; row < indices.size(); ++row) {
        if (finished[row]) {
          next[row] = 0;
          continue;
        }
        next[row] = SampleToken(last[static_cast<int64_t>(row)], options_, generators[row]);
        Generation& output = outputs[indices[row]];
        output.tokens.push_back(next[row]);
        ++generated[row];
        finished[row] = generation_internal::FinishGeneration(output, options_, generated[row],
                                                              length + 1, model_.MaxSeqLen());
      }
      if (std::all_of(finished.begin(), finished.end(), [](bool done) { return done; })) break;
      step_input = torch::tensor(next, torch::kLong).view({batch, 1}).to(device_);
      if (!options_.use_cache) sequence = torch::cat({sequence, step_input}, 1);
    }
    return absl::OkStatus();
  }

 private:
  CausalLM& model_;
  const GenerateOptions& options_;
  torch::Device device_;
};

absl::StatusOr<std::vector<Generation>> GenerateOrThrow(
    CausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
    const GenerateOptions& options) {
  absl::StatusOr<std::map<size_t, std::vector<size_t>>> groups =
      generation_internal::GroupPromptsByLength(model, prompts);
  if (!groups.ok()) return groups.status();
  std::vector<Generation> outputs(prompts.size());
  GroupGenerator generator(model, options, generation_internal::DeviceOf(model));
  for (const auto& [length, indices] : *groups) {
    if (absl::Status status = generator.Run(prompts, indices, outputs); !status.ok()) {
      return status;
    }
  }
  return outputs;
}

}  // namespace

namespace generation_internal {

torch::Device DeviceOf(const CausalLM& model) {
  const std::vector<torch::Tensor> parameters = model.parameters();
  return parameters.empty() ? torch::Device(torch::kCPU) : parameters.front().device();
}

absl::StatusOr<std::map<size_t, std::vector<size_t>>> GroupPromptsByLength(
    CausalLM& model, const std::vector<std::vector<int64_t>>& prompts) {
  const torch::Device device = DeviceOf(model);
  // CausalLM does not state its vocabulary; one one-token forward does.
  const int64_t vocab_size =
      model.forward(torch::zeros({1, 1}, torch::TensorOptions(torch::kLong).device(device)))
          .size(-1);
  std::map<size_t, std::vector<size_t>> groups;  // Prompt length -> prompt indices.
  for (size_t prompt_idx = 0; prompt_idx < prompts.size(); ++prompt_idx) {
    const std::vector<int64_t>& prompt = prompts[prompt_idx];
    const std::string field = absl::StrCat("prompts[", prompt_idx, "]");
    if (prompt.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": expected at least one token"));
    }
    if (static_cast<int64_t>(prompt.size()) > model.MaxSeqLen()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": expected at most MaxSeqLen() = ", model.MaxSeqLen(),
                       " tokens, got ", prompt.size()));
    }
    for (size_t token_idx = 0; token_idx < prompt.size(); ++token_idx) {
      if (prompt[token_idx] < 0 || prompt[token_idx] >= vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat(field, "[", token_idx,
                                                       "]: expected a token in [0, ", vocab_size,
                                                       "), got ", prompt[token_idx]));
      }
    }
    groups[prompt.size()].push_back(prompt_idx);
  }
  return groups;
}

bool FinishGeneration(Generation& output, const GenerateOptions& options, int64_t generated,
                      int64_t total, int64_t max_seq_len) {
  for (const std::vector<int64_t>& stop : options.stop) {
    if (output.tokens.size() >= stop.size() &&
        std::equal(stop.rbegin(), stop.rend(), output.tokens.rbegin())) {
      output.tokens.resize(output.tokens.size() - stop.size());
      output.finish_reason = FinishReason::kStop;
      return true;
    }
  }
  if (generated >= options.max_new_tokens) {
    output.finish_reason = FinishReason::kLength;
    return true;
  }
  if (total >= max_seq_len) {
    output.finish_reason = FinishReason::kContext;
    return true;
  }
  return false;
}

absl::StatusOr<std::vector<Generation>> RunGuarded(
    CausalLM& model, const std::function<absl::StatusOr<std::vector<Generation>>()>& body) {
  torch::NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  absl::StatusOr<std::vector<Generation>> result;
  // The boundary where LibTorch exceptions become statuses, as in model/trainer.cc.
  try {
    result = body();
  } catch (const c10::OutOfMemoryError& error) {
    result = absl::ResourceExhaustedError(
        absl::StrCat("out of memory: ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    result = absl::InternalError(absl::StrCat("LibTorch error: ", error.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    result = absl::ResourceExhaustedError("out of host memory");
  }
  model.train(was_training);
  return result;
}

}  // namespace generation_internal

absl::Status GenerateOptions::Validate() const {
  auto invalid = [](absl::string_view field, absl::string_view expected, auto got) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, ", got ", got));
  };
  if (max_new_tokens < 0) return invalid("max_new_tokens", "an integer >= 0", max_new_tokens);
  if (!(temperature >= 0) || !std::isfinite(temperature)) {
    return invalid("temperature", "a finite number >= 0 (0 = greedy)", temperature);
  }
  if (top_k < 0) return invalid("top_k", "an integer >= 0 (0 = off)", top_k);
  if (!(top_p > 0 && top_p <= 1)) return invalid("top_p", "a value in (0, 1] (1 = off)", top_p);
  for (size_t stop_idx = 0; stop_idx < stop.size(); ++stop_idx) {
    if (stop[stop_idx].empty()) {
      return invalid(absl::StrCat("stop[", stop_idx, "]"), "a non-empty token sequence",
                     "an empty one");
    }
  }
  return absl::OkStatus();
}

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kContext:
      return "context";
  }
  return "unknown";
}

absl::StatusOr<std::vector<Generation>> Generate(CausalLM& model,
                                                 const std::vector<std::vector<int64_t>>& prompts,
                                                 const GenerateOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  return generation_internal::RunGuarded(model,
                                         [&] { return GenerateOrThrow(model, prompts, options); });
}

absl::StatusOr<std::vector<Generation>> GenerateFromWeights(
    const scalelab::v1::RunSpec& spec, const std::string& weights_path, const std::string& prompt,
    int64_t samples, const GenerateOptions& options, double* generate_s) {
  if (samples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples: expected an integer >= 1, got ", samples));
  }
  // execution.threads (and --threads) governs generation as it governs training, with the same
  // single pool (model/ops.h).
  if (spec.execution().threads() > 0) ops::ConfigureCpuThreads(spec.execution().threads());
  absl::StatusOr<std::shared_ptr<CausalLM>> model = BuildModel(spec.config().model());
  if (!model.ok()) return model.status();
  try {
    if (spec.execution().device() == "cuda") (*model)->to(torch::kCUDA);
  } catch (const c10::Error& error) {
    return absl::FailedPreconditionError(
        absl::StrCat("execution.device: cuda unavailable: ", error.what_without_backtrace()));
  }
  if (absl::Status status = LoadWeights(weights_path, **model); !status.ok()) return status;
  std::vector<int64_t> tokens;
  for (unsigned char byte : prompt) tokens.push_back(byte);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::vector<Generation>> generations =
      Generate(**model, std::vector<std::vector<int64_t>>(samples, tokens), options);
  if (generate_s != nullptr) {
    *generate_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return generations;
}

std::string EscapeTokens(const std::vector<int64_t>& tokens) {
  std::string text;
  for (int64_t token : tokens) {
    if (token == '\\') {
      text += "\\\\";
    } else if (token == '\n') {
      text += "\\n";
    } else if (token == '\t') {
      text += "\\t";
    } else if (token >= 0x20 && token < 0x7f) {
      text += static_cast<char>(token);
    } else if (token >= 0 && token < 256) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\x%02x", static_cast<unsigned>(token));
      text += escaped;
    } else {
      absl::StrAppend(&text, "\\u{", token, "}");
    }
  }
  return text;
}

}  // namespace scalelab::model
