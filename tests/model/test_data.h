// Helpers for model tests: a temporary folder that holds token shards and is removed afterwards,
// shards in the llm.c layout (model/data.h), and a tiny synthetic corpus.

#ifndef SCALELAB_TESTS_MODEL_TEST_DATA_H_
#define SCALELAB_TESTS_MODEL_TEST_DATA_H_

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

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

  // The contents of file `path` ("" when unreadable).
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

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

// The bytes of a token shard: the 256-int32 header (magic 20240520, `version`, token count),
// then the tokens as uint16 (version 1) or uint32 (version 2), little-endian. Written
// independently of model/data.cc so the tests check the reader against the format, not itself.
inline std::string EncodeShard(const std::vector<uint32_t>& tokens, int32_t version = 1) {
  std::vector<int32_t> header(256, 0);
  header[0] = 20240520;
  header[1] = version;
  header[2] = static_cast<int32_t>(tokens.size());
  std::string bytes(reinterpret_cast<const char*>(header.data()), header.size() * 4);
  for (uint32_t token : tokens) {
    const int width = version == 1 ? 2 : 4;
    for (int byte = 0; byte < width; ++byte) {
      bytes.push_back(static_cast<char>((token >> (8 * byte)) & 0xff));
    }
  }
  return bytes;
}

// Byte-level tokens of `text` (vocabulary 256).
inline std::vector<uint32_t> ByteTokens(const std::string& text) {
  return std::vector<uint32_t>(reinterpret_cast<const unsigned char*>(text.data()),
                               reinterpret_cast<const unsigned char*>(text.data()) + text.size());
}

// Writes a data source folder <dir>/<name> with train.bin (the first 90% of `text`) and val.bin,
// byte-level tokens in version 1 (uint16) shards, as `scalelab data` writes them.
inline void WriteSource(const TempDir& dir, const std::string& name, const std::string& text) {
  const size_t split = text.size() * 9 / 10;
  dir.Write(name + "/train.bin", EncodeShard(ByteTokens(text.substr(0, split))));
  dir.Write(name + "/val.bin", EncodeShard(ByteTokens(text.substr(split))));
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
