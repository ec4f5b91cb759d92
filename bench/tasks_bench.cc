// scalelab-tasks-bench: costs of the tasks library on one core, for sizing eval and GRPO steps:
// verification per response by extractor and response length, problems generated per second by
// family, and pass@k with its bootstrap interval over many problems.
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "tasks/generators.h"
#include "tasks/pass_at_k.h"
#include "tasks/verifier.h"

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

int main() {
  using namespace scalelab::tasks;
  std::printf("verify (numeric), microseconds per response:\n");
  for (auto [name, extract] :
       {std::pair{"last_number", Extract::kLastNumber}, std::pair{"answer_is", Extract::kAnswerIs},
        std::pair{"hashes", Extract::kHashes}}) {
    VerifierSpec spec;
    spec.extract = extract;
    spec.compare = Compare::kNumeric;
    const Verifier verifier = *Verifier::Create(spec);
    for (size_t length : {64, 1024, 16384}) {
      std::string response;
      while (response.size() < length) response += "Ann has 12 pens and gets 7 more. ";
      response += "The answer is 19\n#### 19";
      const int reps = length <= 1024 ? 20000 : 2000;
      int correct = 0;
      const Clock::time_point start = Clock::now();
      for (int rep = 0; rep < reps; ++rep) correct += verifier.Verify(response, "19").correct;
      std::printf("  %-12s %6zu bytes  %8.2f us  (correct %d/%d)\n", name, response.size(),
                  SecondsSince(start) * 1e6 / reps, correct, reps);
    }
  }
  std::printf("generate 20000 test-split problems (default knobs):\n");
  for (TaskFamily family : {TaskFamily::kAddition, TaskFamily::kMultiplication,
                            TaskFamily::kModular, TaskFamily::kSorting, TaskFamily::kWord}) {
    GeneratorOptions options;
    options.family = family;
    const Clock::time_point start = Clock::now();
    const auto problems = GenerateProblems(options, Split::kTest, 0, 20000);
    const double seconds = SecondsSince(start);
    std::printf("  %-15s %10.0f problems/s%s\n", std::string(FamilyName(family)).c_str(),
                problems.ok() ? 20000 / seconds : 0.0, problems.ok() ? "" : " (failed)");
  }
  std::vector<SampleCounts> counts;
  for (int problem = 0; problem < 1000; ++problem) counts.push_back({64, problem % 65});
  PassAtKOptions options;
  options.ks = {1, 4, 16, 64};
  const Clock::time_point start = Clock::now();
  const auto values = EstimatePassAtK(counts, options);
  std::printf(
      "pass@k over 1000 problems (n=64, k=1,4,16,64, 1000 bootstrap resamples): %.1f ms%s\n",
      SecondsSince(start) * 1e3, values.ok() ? "" : " (failed)");
  return 0;
}
