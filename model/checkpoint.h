// Model weights on disk: the final weights a run writes, and the weights a run starts from
// (RunSpec.init_artifact). The file is LibTorch's archive of the module (torch::nn::Module::save,
// readable with torch::load in C++), holding parameters and buffers only: no optimizer state.

#ifndef SCALELAB_MODEL_CHECKPOINT_H_
#define SCALELAB_MODEL_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/metrics.h"

namespace scalelab::model {

// Writes `model`'s weights to `path` through `path`.tmp and a rename, so a reader never sees half
// a file. kInternal naming the path when it cannot be written.
absl::Status SaveWeights(const CausalLM& model, const std::string& path);

// Copies the weights stored at `path` into `model` (on whatever device it is on). Every
// parameter and buffer of the model must be in the file with the same shape, and the file must
// hold nothing else. Errors name the file:
//   kNotFound         no file at `path`;
//   kInvalidArgument  not a weights archive, or a tensor missing, extra or of another shape
//                     ("blocks.0.fc.weight has shape [64, 32] in the file, [128, 32] in the
//                     model"). On error the model may be partly overwritten.
absl::Status LoadWeights(const std::string& path, CausalLM& model);

// The end-of-run hook every loop calls: unless `output_dir` is empty (tests), saves the weights to
// `<output_dir>/final.pt` (absolute; the folder is created) and announces
// {"artifact":"final","path":...,"step":step} through `sink`. Returns the path, or "" when not
// saved.
absl::StatusOr<std::string> SaveFinalWeights(const CausalLM& model, const std::string& output_dir,
                                             int64_t step, MetricSink& sink);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_CHECKPOINT_H_
