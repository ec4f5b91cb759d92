// Model weights and training state on disk.
//
// Weights: the final weights a run writes and the weights a run starts from
// (RunSpec.init_artifact), LibTorch's archive of the module (torch::nn::Module::save, readable
// with torch::load in C++), parameters and buffers only.
//
// Training state (checkpoints): `<checkpoint_dir>/ckpt-<step>.pt`, one LibTorch archive holding
// everything a loop needs to continue as if it had never stopped, so that a resumed run's losses
// are bit-identical to an uninterrupted run's (same build, device and thread count): the weights
// ("model"), the AdamW state ("optimizer", torch::optim serialization), torch's CPU generator
// state (and CUDA's when CUDA is available) and LoopCounters. Files are written atomically
// (temporary file, fsync, rename, fsync of the folder); a reader skips a newest file that is
// corrupt or partial and falls back to the one before.

#ifndef SCALELAB_MODEL_CHECKPOINT_H_
#define SCALELAB_MODEL_CHECKPOINT_H_

#include <torch/torch.h>

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/causal_lm.h"
#include "model/loops/divergence.h"
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

// A loop's own numbers that a checkpoint carries besides weights, optimizer and RNG.
struct LoopCounters {
  int64_t step = 0;           // Optimizer steps completed.
  int64_t data_position = 0;  // TrainBatches::position() after `step` steps.
  DivergenceState divergence;
  // The reporting interval in progress: training loss summed over its steps, its step count and
  // its training seconds (train_loss is their mean at the next report).
  double interval_loss_sum = 0;
  int64_t interval_steps = 0;
  double interval_train_s = 0;
  double final_train_loss = 0;  // The last reported train_loss.
  double final_val_loss = 0;    // The last val_loss (mixture).
};

// Writes `<dir>/ckpt-<counters.step>.pt` (dir created, absolute path returned) with the weights,
// `optimizer`'s state, torch's generator states and `counters`: first to `<file>.tmp`, fsynced,
// renamed, then the folder fsynced, so after a crash the file is either whole or absent.
// kInternal naming the file when any of it fails.
absl::StatusOr<std::string> SaveTrainState(const std::string& dir, const CausalLM& model,
                                           const torch::optim::Optimizer& optimizer,
                                           const LoopCounters& counters);

// Deletes all but the newest `keep` (>= 1) checkpoints in `dir`, by step, and any leftover
// `.tmp` file (one writer per folder: a run's attempts never overlap). kInternal naming a file
// that cannot be removed.
absl::Status PruneCheckpoints(const std::string& dir, int64_t keep);

// The checkpoint files in `dir`, oldest first (by the step in the name); temporary files and
// other names are not listed. Empty when the folder does not exist.
std::vector<std::string> ListCheckpoints(const std::string& dir);

// A checkpoint read from disk and checked for completeness, not yet applied.
class SavedTrainState {
 public:
  const std::string& path() const { return path_; }
  const LoopCounters& counters() const { return counters_; }

  // Copies the weights into `model` (checked by name and shape as LoadWeights does), the state
  // into `optimizer` (built over the same model) and the generator states into torch's default
  // generators. kInvalidArgument naming the file when it does not fit the model; on error the
  // model and optimizer may be partly overwritten.
  absl::Status Restore(CausalLM& model, torch::optim::Optimizer& optimizer);

 private:
  friend absl::StatusOr<std::unique_ptr<SavedTrainState>> ReadTrainState(const std::string& path);
  std::string path_;
  LoopCounters counters_;
  torch::serialize::InputArchive archive_;
};

// Reads and checks one checkpoint file. kDataLoss naming the file when it is not a complete
// checkpoint (truncated, corrupt, a key missing).
absl::StatusOr<std::unique_ptr<SavedTrainState>> ReadTrainState(const std::string& path);

// The newest complete checkpoint in `dir`, or null when there is none (no folder, no files, or
// every file unreadable). A file that cannot be read is skipped with a line on `log` (when not
// null) naming it and why.
std::unique_ptr<SavedTrainState> LoadTrainState(const std::string& dir, std::ostream* log);

}  // namespace scalelab::model

#endif  // SCALELAB_MODEL_CHECKPOINT_H_
