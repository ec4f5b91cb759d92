#include "model/checkpoint.h"

#include <fcntl.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace scalelab::model {
namespace {

std::string Shape(const torch::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

// Mirrors torch::nn::Module::load, level by level, but checks what it reads: Module::load
// silently adopts a stored tensor of another shape (Tensor::set_), which would turn a config
// mismatch into a crash deep inside the first forward pass.
// `source` names the file in errors ("init weights /a/b.pt").
absl::Status LoadLevel(torch::nn::Module& module, torch::serialize::InputArchive& archive,
                       const std::string& prefix, const std::string& source) {
  auto invalid = [&source](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
  };
  std::set<std::string> expected;
  auto read = [&](const std::string& key, torch::Tensor& target, bool is_buffer) -> absl::Status {
    expected.insert(key);
    torch::Tensor stored;
    if (!archive.try_read(key, stored, is_buffer)) {
      return invalid(absl::StrCat("no tensor ", prefix, key, " in the file"));
    }
    if (stored.sizes() != target.sizes()) {
      return invalid(absl::StrCat(prefix, key, " has shape ", Shape(stored), " in the file, ",
                                  Shape(target), " in the model"));
    }
    target.copy_(stored);
    return absl::OkStatus();
  };
  for (auto& item : module.named_parameters(/*recurse=*/false)) {
    if (absl::Status status = read(item.key(), item.value(), false); !status.ok()) return status;
  }
  for (auto& item : module.named_buffers(/*recurse=*/false)) {
    if (absl::Status status = read(item.key(), item.value(), true); !status.ok()) return status;
  }
  for (auto& child : module.named_children()) {
    expected.insert(child.key());
    torch::serialize::InputArchive child_archive;
    if (!archive.try_read(child.key(), child_archive)) {
      return invalid(absl::StrCat("no module ", prefix, child.key(), " in the file"));
    }
    if (absl::Status status =
            LoadLevel(*child.value(), child_archive, prefix + child.key() + ".", source);
        !status.ok()) {
      return status;
    }
  }
  for (const std::string& key : archive.keys()) {
    // "training" is the module flag every archive level carries, not a weight.
    if (key != "training" && expected.count(key) == 0) {
      return invalid(absl::StrCat(prefix, key, " is in the file but not in the model"));
    }
  }
  return absl::OkStatus();
}

constexpr char kCheckpointPrefix[] = "ckpt-";
constexpr char kCheckpointSuffix[] = ".pt";

// The step in a checkpoint file name ("ckpt-120.pt" -> 120), or -1 for any other name.
int64_t CheckpointStep(absl::string_view name) {
  int64_t step = -1;
  if (!absl::ConsumePrefix(&name, kCheckpointPrefix) ||
      !absl::ConsumeSuffix(&name, kCheckpointSuffix) || !absl::SimpleAtoi(name, &step) ||
      step < 0) {
    return -1;
  }
  return step;
}

// fsync of a file or folder by path; errno text on failure.
absl::Status SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  ::close(fd);
  if (!synced) {
    return absl::InternalError(
        absl::StrCat("cannot fsync ", path, ": ", std::strerror(sync_errno)));
  }
  return absl::OkStatus();
}

// torch's default generators: the CPU one always, CUDA device 0's when CUDA is available (the
// trainer sees its GPUs as 0..n-1 and seeds through device 0's generator).
std::vector<std::pair<std::string, at::Generator>> Generators() {
  std::vector<std::pair<std::string, at::Generator>> generators;
  generators.emplace_back("rng_cpu", at::globalContext().defaultGenerator(at::kCPU));
  if (torch::cuda::is_available()) {
    generators.emplace_back("rng_cuda",
                            at::globalContext().defaultGenerator(at::Device(at::kCUDA, 0)));
  }
  return generators;
}

void WriteCounters(const LoopCounters& counters, torch::serialize::OutputArchive& archive) {
  archive.write("step", c10::IValue(counters.step));
  archive.write("data_position", c10::IValue(counters.data_position));
  archive.write("divergence_observed", c10::IValue(counters.divergence.observed));
  archive.write("divergence_smoothed", c10::IValue(counters.divergence.smoothed));
  archive.write("divergence_best", c10::IValue(counters.divergence.best));
  archive.write("interval_loss_sum", c10::IValue(counters.interval_loss_sum));
  archive.write("interval_steps", c10::IValue(counters.interval_steps));
  archive.write("interval_train_s", c10::IValue(counters.interval_train_s));
  archive.write("final_train_loss", c10::IValue(counters.final_train_loss));
  archive.write("final_val_loss", c10::IValue(counters.final_val_loss));
}

// Reads every counter; the name of the first one missing or of the wrong type on failure.
absl::StatusOr<LoopCounters> ReadCounters(torch::serialize::InputArchive& archive) {
  LoopCounters counters;
  std::string missing;
  auto read_int = [&](const char* key, int64_t& out) {
    c10::IValue value;
    if (!missing.empty()) return;
    if (!archive.try_read(key, value) || !value.isInt()) {
      missing = key;
      return;
    }
    out = value.toInt();
  };
  auto read_double = [&](const char* key, double& out) {
    c10::IValue value;
    if (!missing.empty()) return;
    if (!archive.try_read(key, value) || !value.isDouble()) {
      missing = key;
      return;
    }
    out = value.toDouble();
  };
  read_int("step", counters.step);
  read_int("data_position", counters.data_position);
  read_int("divergence_observed", counters.divergence.observed);
  read_double("divergence_smoothed", counters.divergence.smoothed);
  read_double("divergence_best", counters.divergence.best);
  read_double("interval_loss_sum", counters.interval_loss_sum);
  read_int("interval_steps", counters.interval_steps);
  read_double("interval_train_s", counters.interval_train_s);
  read_double("final_train_loss", counters.final_train_loss);
  read_double("final_val_loss", counters.final_val_loss);
  if (!missing.empty()) return absl::DataLossError(absl::StrCat("no counter ", missing));
  return counters;
}

}  // namespace

absl::Status SaveWeights(const CausalLM& model, const std::string& path) {
  const std::string temp = path + ".tmp";
  try {
    torch::serialize::OutputArchive archive;
    model.save(archive);
    archive.save_to(temp);
  } catch (const c10::Error& error) {
    return absl::InternalError(
        absl::StrCat("cannot write weights to ", temp, ": ", error.what_without_backtrace()));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status LoadWeights(const std::string& path, CausalLM& model) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat("init weights ", path, ": no such file"));
  }
  torch::serialize::InputArchive archive;
  try {
    // Onto the CPU first: weights saved on a GPU must load on a CPU-only worker too; copy_
    // below moves them to the model's device.
    archive.load_from(path, torch::kCPU);
  } catch (const c10::Error& load_error) {
    return absl::InvalidArgumentError(absl::StrCat("init weights ", path,
                                                   ": not a weights archive written by "
                                                   "scalelab-train (",
                                                   load_error.what_without_backtrace(), ")"));
  }
  torch::NoGradGuard no_grad;
  return LoadLevel(model, archive, "", absl::StrCat("init weights ", path));
}

absl::StatusOr<std::string> SaveFinalWeights(const CausalLM& model, const std::string& output_dir,
                                             int64_t step, MetricSink& sink) {
  if (output_dir.empty()) return std::string();
  std::error_code error;
  const std::filesystem::path dir = std::filesystem::absolute(output_dir, error);
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create output_dir ", dir.string(), ": ", error.message()));
  }
  const std::string path = (dir / "final.pt").string();
  if (absl::Status status = SaveWeights(model, path); !status.ok()) return status;
  sink.WriteArtifact(ArtifactRecord{"final", path, step});
  return path;
}

absl::StatusOr<std::string> SaveTrainState(const std::string& dir, const CausalLM& model,
                                           const torch::optim::Optimizer& optimizer,
                                           const LoopCounters& counters) {
  std::error_code error;
  const std::filesystem::path folder = std::filesystem::absolute(dir, error);
  std::filesystem::create_directories(folder, error);
  if (error) {
    return absl::InternalError(
        absl::StrCat("cannot create checkpoint_dir ", folder.string(), ": ", error.message()));
  }
  const std::string path =
      (folder / absl::StrCat(kCheckpointPrefix, counters.step, kCheckpointSuffix)).string();
  const std::string temp = path + ".tmp";
  try {
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive model_archive;
    model.save(model_archive);
    archive.write("model", model_archive);
    torch::serialize::OutputArchive optimizer_archive;
    optimizer.save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
    for (auto& [key, generator] : Generators()) {
      std::lock_guard<std::mutex> lock(generator.mutex());
      archive.write(key, generator.get_state());
    }
    WriteCounters(counters, archive);
    archive.save_to(temp);
  } catch (const c10::Error& save_error) {
    return absl::InternalError(
        absl::StrCat("cannot write checkpoint ", temp, ": ", save_error.what_without_backtrace()));
  }
  if (absl::Status status = SyncPath(temp, O_RDONLY); !status.ok()) return status;
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", temp, " to ", path, ": ", std::strerror(errno)));
  }
  // The rename is durable only once the folder's entry is on disk.
  if (absl::Status status = SyncPath(folder.string(), O_RDONLY | O_DIRECTORY); !status.ok()) {
    return status;
  }
  return path;
}

std::vector<std::string> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const int64_t step = CheckpointStep(entry.path().filename().string());
    if (step >= 0 && entry.is_regular_file(error)) found.emplace_back(step, entry.path().string());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (auto& [step, path] : found) paths.push_back(std::move(path));
  return paths;
}

absl::Status PruneCheckpoints(const std::string& dir, int64_t keep) {
  std::vector<std::string> doomed = ListCheckpoints(dir);
  doomed.resize(doomed.size() > static_cast<size_t>(keep) ? doomed.size() - keep : 0);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, kCheckpointPrefix) && absl::EndsWith(name, ".tmp")) {
      doomed.push_back(entry.path().string());
    }
  }
  for (const std::string& path : doomed) {
    if (!std::filesystem::remove(path, error) && error) {
      return absl::InternalError(absl::StrCat("cannot remove ", path, ": ", error.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SavedTrainState>> ReadTrainState(const std::string& path) {
  auto state = std::unique_ptr<SavedTrainState>(new SavedTrainState());
  state->path_ = path;
  try {
    // Onto the CPU: a checkpoint written on a GPU must load anywhere; Restore copies to the
    // model's device.
    state->archive_.load_from(path, torch::kCPU);
    torch::serialize::InputArchive probe;
    for (const char* key : {"model", "optimizer"}) {
      if (!state->archive_.try_read(key, probe)) {
        return absl::DataLossError(absl::StrCat("checkpoint ", path, ": no ", key, " state"));
      }
    }
    torch::Tensor rng;
    if (!state->archive_.try_read("rng_cpu", rng)) {
      return absl::DataLossError(absl::StrCat("checkpoint ", path, ": no rng_cpu state"));
    }
    absl::StatusOr<LoopCounters> counters = ReadCounters(state->archive_);
    if (!counters.ok()) {
      return absl::DataLossError(
          absl::StrCat("checkpoint ", path, ": ", counters.status().message()));
    }
    state->counters_ = *counters;
  } catch (const c10::Error& load_error) {
    return absl::DataLossError(absl::StrCat("checkpoint ", path, ": unreadable (",
                                            load_error.what_without_backtrace(), ")"));
  }
  return state;
}

absl::Status SavedTrainState::Restore(CausalLM& model, torch::optim::Optimizer& optimizer) {
  torch::serialize::InputArchive model_archive;
  archive_.read("model", model_archive);
  {
    torch::NoGradGuard no_grad;
    if (absl::Status status =
            LoadLevel(model, model_archive, "", absl::StrCat("checkpoint ", path_));
        !status.ok()) {
      return status;
    }
  }
  torch::serialize::InputArchive optimizer_archive;
  archive_.read("optimizer", optimizer_archive);
  try {
    optimizer.load(optimizer_archive);
  } catch (const c10::Error& load_error) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint ", path_,
                                                   ": optimizer state does not fit the model (",
                                                   load_error.what_without_backtrace(), ")"));
  }
  // The optimizer state loads onto the CPU; the moments must live where the parameters do.
  for (auto& [key, param_state] : optimizer.state()) {
    auto* adamw = dynamic_cast<torch::optim::AdamWParamState*>(param_state.get());
    if (adamw == nullptr) continue;
    const torch::Device device = model.parameters().front().device();
    adamw->exp_avg(adamw->exp_avg().to(device));
    adamw->exp_avg_sq(adamw->exp_avg_sq().to(device));
    if (adamw->max_exp_avg_sq().defined()) {
      adamw->max_exp_avg_sq(adamw->max_exp_avg_sq().to(device));
    }
  }
  for (auto& [key, generator] : Generators()) {
    torch::Tensor rng;
    if (!archive_.try_read(key, rng)) continue;  // written without CUDA: nothing to restore
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
  }
  return absl::OkStatus();
}

std::unique_ptr<SavedTrainState> LoadTrainState(const std::string& dir, std::ostream* log) {
  const std::vector<std::string> paths = ListCheckpoints(dir);
  for (auto path = paths.rbegin(); path != paths.rend(); ++path) {
    absl::StatusOr<std::unique_ptr<SavedTrainState>> state = ReadTrainState(*path);
    if (state.ok()) return *std::move(state);
    if (log != nullptr) {
      *log << "scalelab-train: skipping " << state.status().message() << std::endl;
    }
  }
  return nullptr;
}

}  // namespace scalelab::model
