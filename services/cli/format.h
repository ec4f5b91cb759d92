// What the `scalelab` client prints, as pure functions of the API's messages: tables, JSON,
// CSV and the checks on text before it is sent. No gRPC calls here; commands.cc makes the calls
// and hands the answers to these, so the output is tested without a scheduler.
#ifndef SCALELAB_SERVICES_CLI_FORMAT_H_
#define SCALELAB_SERVICES_CLI_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "scalelab/v1/results.pb.h"
#include "scalelab/v1/sweep.pb.h"

namespace scalelab::cli {

// The message as indented JSON with proto field names (what --output=json prints).
std::string Json(const google::protobuf::Message& message);
// The same on one line (watch --output=json prints one event per line).
std::string JsonLine(const google::protobuf::Message& message);

// Left-aligned columns sized to their widest cell, two spaces apart, header first (none when
// `header` is empty), each line after `indent`.
void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows, const std::string& indent = "");

// "RUNNING:3 SUCCEEDED:5", states in name order.
std::string Counts(const v1::Sweep& sweep);
// A loss with four decimals, "-" when NaN (not measured).
std::string Loss(double value);
// A run's overrides as "key=value ..." sorted by key.
std::string Overrides(const v1::Run& run);
// The one-line summary above a sweep's runs.
std::string SweepHeadline(const v1::Sweep& sweep);
void PrintSweeps(std::ostream& out, const std::vector<v1::Sweep>& sweeps);
// RUN IDX STAGE PARENT STATE ATTEMPT STEP TOKENS TRAIN_LOSS VAL_LOSS OVERRIDES; PARENT is the run
// a pipeline child starts from ("-" for none).
void PrintRuns(std::ostream& out, const std::vector<v1::Run>& runs);
// The run's stage name; "main" when the run carries none.
std::string StageOf(const v1::Run& run);
// "showing 1000 of 10000 runs; --all lists every run" when shown < total, else "".
std::string ShowingNote(int64_t shown, int64_t total);

// ARTIFACT ATTEMPT STEP KIND SIZE SHA256 LOCATION; sizes as "1.5 MiB", SHA-256 cut to 12 digits.
void PrintArtifacts(std::ostream& out, const std::vector<v1::Artifact>& artifacts);
// "512 B", "1.5 KiB", "3.2 MiB", "1.1 GiB".
std::string Bytes(int64_t bytes);

// `value` to `digits` significant digits: fixed from 1e-3 up to 1e5 ("0.3473", "406", "29638"),
// else scientific without padding ("1.2e19", "4.45e5", "3e-5"); "-" for NaN, "inf", "-inf".
std::string Significant(double value, int digits);
// Significant(value, 4) without trailing zeros: "0.68", "-0.2493", "1", grades "4".
std::string Short(double value);

// metrics --format=csv: a header, then one line per point.
void PrintMetricsCsv(std::ostream& out, int64_t run_id, const v1::GetRunMetricsResponse& metrics);

// Where `text` stops being UTF-8 (as protobuf checks string fields: no overlong forms, no
// surrogates, nothing above U+10FFFF, no truncated sequence), or nullopt when it all is.
struct Utf8Error {
  size_t offset = 0;     // 0-based byte offset of the first byte of the bad sequence
  int line = 1;          // 1-based line holding it
  unsigned char byte{};  // the byte at `offset`
};
std::optional<Utf8Error> FindInvalidUtf8(absl::string_view text);

// `text` with each invalid UTF-8 sequence replaced by U+FFFD, for names sent in messages.
std::string ToValidUtf8(absl::string_view text);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_FORMAT_H_
