// A CausalLM whose answers are known in advance, for testing what is built on generation
// (pass@k evaluation) without training a model first. It reads the bytes of each sequence so
// far; when they start with one of its questions, it puts all its mass on the next byte of that
// question's response (the answer it was given, then "\n"), otherwise on "\n". A "coin" oracle
// splits the first response byte evenly between the right answer and a wrong one ('x'), so its
// samples are right about half the time and depend on the sampling seed.

#ifndef SCALELAB_TESTS_MODEL_ORACLE_LM_H_
#define SCALELAB_TESTS_MODEL_ORACLE_LM_H_

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "model/causal_lm.h"

namespace scalelab::model::testing {

class OracleLM : public CausalLM {
 public:
  // question -> the response it writes (without the final "\n").
  explicit OracleLM(std::map<std::string, std::string> responses, bool coin = false)
      : responses_(std::move(responses)), coin_(coin) {}

  torch::Tensor forward(const torch::Tensor& tokens) override {
    const torch::Tensor cpu = tokens.to(torch::kCPU);
    const int64_t batch = cpu.size(0);
    const int64_t length = cpu.size(1);
    torch::Tensor logits = torch::zeros({batch, length, 256});
    for (int64_t row = 0; row < batch; ++row) {
      std::string prefix;
      for (int64_t pos = 0; pos < length; ++pos) {
        prefix.push_back(static_cast<char>(cpu[row][pos].item<int64_t>()));
        for (int next : NextBytes(prefix)) logits[row][pos][next] = 100.0f;
      }
    }
    return logits.to(tokens.device());
  }

  int64_t NumNonEmbeddingParams() const override { return 0; }
  double FlopsPerToken() const override { return 0; }
  int64_t MaxSeqLen() const override { return 64; }
  ParamGroups ParameterGroups() const override { return {}; }
  InferenceState NewInferenceState(int64_t batch_size) const override {
    InferenceState state;
    state.batch_size = batch_size;
    state.layers.resize(1);
    return state;
  }
  // Keeps the tokens seen so far in layers[0].keys and rescores the whole sequence.
  absl::StatusOr<torch::Tensor> ForwardStep(const torch::Tensor& tokens,
                                            InferenceState& state) override {
    torch::Tensor& seen = state.layers[0].keys;
    seen = seen.defined() ? torch::cat({seen, tokens.to(torch::kCPU)}, 1) : tokens.to(torch::kCPU);
    state.position += tokens.size(1);
    const torch::Tensor logits = forward(seen);
    return logits.narrow(1, seen.size(1) - tokens.size(1), tokens.size(1));
  }

 private:
  std::vector<int> NextBytes(const std::string& prefix) const {
    for (const auto& [question, answer] : responses_) {
      if (prefix.compare(0, question.size(), question) != 0) continue;
      const std::string written = prefix.substr(question.size());
      const std::string response = answer + "\n";
      if (written.size() < response.size() && response.compare(0, written.size(), written) == 0) {
        const int next = static_cast<unsigned char>(response[written.size()]);
        if (coin_ && written.empty()) return {next, 'x'};
        return {next};
      }
    }
    return {'\n'};
  }

  std::map<std::string, std::string> responses_;
  bool coin_;
};

}  // namespace scalelab::model::testing

#endif  // SCALELAB_TESTS_MODEL_ORACLE_LM_H_
