// `scalelab data`: a text corpus -> byte-level token shards the trainer reads (model/data.h).
//
// Output folder layout (format "llmc-bin", the llm.c / nanoGPT shard layout: a header of 256
// little-endian int32 -- magic 20240520, version 1, token count, the rest 0 -- then the tokens as
// uint16; byte-level tokens, vocabulary 256):
//   train.bin  the first (1 - val_fraction) of the text
//   val.bin    the held-out tail
//     or, with shard_tokens > 0, train_000000.bin, train_000001.bin, ... and val_000000.bin, ...
//   meta.json  {"format", "version", "vocab_size", "train_tokens", "val_tokens", "train_shards",
//               "val_shards", "unigram_entropy_nats", "source"}
// The unigram entropy is the loss of the best model that ignores context; a trained model must
// beat it by a wide margin, which makes it the natural reference for "did it learn".
#ifndef SCALELAB_SERVICES_CLI_DATA_PREP_H_
#define SCALELAB_SERVICES_CLI_DATA_PREP_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace scalelab::cli {

struct DataPrepOptions {
  std::string input;                // plain text or gzip (e.g. /usr/share/dictd/gcide.dict.dz)
  std::string output;               // folder; created if missing; existing shards are replaced
  int64_t skip_bytes = 0;           // bytes dropped from the start (file headers)
  int64_t max_bytes = 8'000'000;    // bytes kept after normalization; 0 = all
  double val_fraction = 0.05;       // held-out tail, in (0, 0.5]
  bool collapse_whitespace = true;  // runs of spaces/tabs -> one space (dictionary indents)
  // Tokens per shard file, >= 0; 0 = one train.bin and one val.bin. Each split is cut into
  // ceil(tokens / shard_tokens) shards of near-equal size (none longer than shard_tokens), so no
  // short tail shard is wasted: a shard shorter than seq_len + 1 would give no training window.
  int64_t shard_tokens = 0;
  absl::Status Validate() const;
};

struct DataPrepResult {
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  int64_t train_shards = 0;
  int64_t val_shards = 0;
  double unigram_entropy_nats = 0;  // of the training split
};

// Reads, normalizes and splits the corpus, then replaces every train*.bin and val*.bin in the
// output folder (stale shards would otherwise be read as part of the source). Errors name the
// flag: kInvalidArgument bad options or too little text, kNotFound unreadable input, kDataLoss a
// corrupt gzip stream, kUnavailable a failed write.
absl::StatusOr<DataPrepResult> PrepareByteShards(const DataPrepOptions& options);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_DATA_PREP_H_
