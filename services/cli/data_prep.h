// `scalelab data`: a text corpus -> byte-level token shards the trainer reads.
//
// Output folder layout (format "scalelab-bytes-v1"):
//   train.bin  one byte per token (vocabulary 256), the first (1 - val_fraction) of the text
//   val.bin    the held-out tail
//   meta.json  {"format", "vocab_size", "train_tokens", "val_tokens", "unigram_entropy_nats",
//               "source"}
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
  absl::Status Validate() const;
};

struct DataPrepResult {
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  double unigram_entropy_nats = 0;  // of the training split
};

absl::StatusOr<DataPrepResult> PrepareByteShards(const DataPrepOptions& options);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_DATA_PREP_H_
