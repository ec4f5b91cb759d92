#include "model/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <set>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace scalelab::model {
namespace {

std::string Shape(const torch::Tensor& tensor) {
  return absl::StrCat("[", absl::StrJoin(tensor.sizes(), ", "), "]");
}

// Mirrors torch::nn::Module::load, level by level, but checks what it reads: Module::load
// silently adopts a stored tensor of another shape (Tensor::set_), which would turn a config
// mismatch into a crash deep inside the first forward pass.
absl::Status LoadLevel(torch::nn::Module& module, torch::serialize::InputArchive& archive,
                       const std::string& prefix, const std::string& path) {
  auto invalid = [&path](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("init weights ", path, ": ", what));
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
            LoadLevel(*child.value(), child_archive, prefix + child.key() + ".", path);
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
  return LoadLevel(model, archive, "", path);
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

}  // namespace scalelab::model
