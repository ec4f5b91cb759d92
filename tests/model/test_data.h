// Helpers for model tests: a temporary folder that holds token files and is removed afterwards,
// and a tiny synthetic corpus.

#ifndef SCALELAB_TESTS_MODEL_TEST_DATA_H_
#define SCALELAB_TESTS_MODEL_TEST_DATA_H_

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace scalelab::model::testing {

// A fresh folder under the system temp dir, deleted with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "scalelab_model_test_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  // Writes `bytes` to <path>/<name>, creating subfolders; returns the full path.
  std::string Write(const std::string& name, const std::string& bytes) const {
    const std::filesystem::path file = std::filesystem::path(path_) / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << bytes;
    return file.string();
  }

 private:
  std::string path_;
};

// Writes a data source folder <dir>/<name> with train.bin (the first 90% of `text`) and val.bin.
inline void WriteSource(const TempDir& dir, const std::string& name, const std::string& text) {
  const size_t split = text.size() * 9 / 10;
  dir.Write(name + "/train.bin", text.substr(0, split));
  dir.Write(name + "/val.bin", text.substr(split));
}

// `tokens` bytes of a repetitive English-like text: easy to learn, so a short run shows a
// clear drop in loss.
inline std::string RepetitiveCorpus(int64_t tokens) {
  const std::string phrase =
      "the quick brown fox jumps over the lazy dog. a stitch in time saves nine. ";
  std::string text;
  while (static_cast<int64_t>(text.size()) < tokens) text += phrase;
  text.resize(static_cast<size_t>(tokens));
  return text;
}

}  // namespace scalelab::model::testing

#endif  // SCALELAB_TESTS_MODEL_TEST_DATA_H_
