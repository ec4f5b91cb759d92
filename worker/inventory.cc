#include "worker/inventory.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace scalelab::worker {

std::vector<v1::GpuInfo> DetectGpus(const std::string& proc_root) {
  std::vector<v1::GpuInfo> gpus;
  std::error_code error;
  std::filesystem::path dir = std::filesystem::path(proc_root) / "driver/nvidia/gpus";
  std::vector<std::filesystem::path> entries;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    entries.push_back(entry.path());
  }
  std::sort(entries.begin(), entries.end());  // PCI bus order is the driver's index order
  for (const auto& path : entries) {
    v1::GpuInfo gpu;
    gpu.set_index(static_cast<int>(gpus.size()));
    std::ifstream in(path / "information");
    std::string line;
    while (std::getline(in, line)) {
      absl::string_view view(line);
      if (absl::ConsumePrefix(&view, "Model:")) {
        gpu.set_name(std::string(absl::StripAsciiWhitespace(view)));
      }
    }
    gpus.push_back(gpu);
  }
  return gpus;
}

std::string Hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

}  // namespace scalelab::worker
