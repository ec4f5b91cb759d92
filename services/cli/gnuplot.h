// Draws a PlotData with gnuplot (5.4; terminals svg and pngcairo): one script with the data
// inline (`$curves << EOD` blocks), run as a child process. The numbers are plot.h's.
#ifndef SCALELAB_SERVICES_CLI_GNUPLOT_H_
#define SCALELAB_SERVICES_CLI_GNUPLOT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/cli/plot.h"

namespace scalelab::cli {

enum class ImageFormat { kSvg, kPng };

// kSvg for "*.svg", kPng for "*.png" (any case); InvalidArgument naming --out otherwise.
absl::StatusOr<ImageFormat> ImageFormatOf(absl::string_view path);

// The whole gnuplot script: terminal, `set output` to `output_path`, the data blocks and the
// plot commands. With a compute axis and anything to put there (a frontier, allocations or
// isoFLOP minima with a known N), a second panel shows N against C.
std::string GnuplotScript(const PlotData& data, const std::string& output_path, ImageFormat format);

struct GnuplotOptions {
  std::string gnuplot = "gnuplot";  // the executable; looked up on PATH without a slash
  double timeout_s = 60;            // killed after this long
};

// Runs `gnuplot script_path`. FailedPrecondition when gnuplot is not installed (with how to
// install it); Internal when it fails, with its exit status and its stderr (capped).
absl::Status RunGnuplot(const std::string& script_path, const GnuplotOptions& options);

// Draws `data` into `output_path` (its extension picks SVG or PNG). The image is written to a
// temporary file beside it and renamed into place, so a failure leaves an existing file as it
// was. With keep_script the script is also saved as `output_path` with ".gp" for its
// extension, ready to rerun with `gnuplot FILE.gp`; that path is returned, else "".
absl::StatusOr<std::string> RenderPlot(const PlotData& data, const std::string& output_path,
                                       bool keep_script, const GnuplotOptions& options);

}  // namespace scalelab::cli

#endif  // SCALELAB_SERVICES_CLI_GNUPLOT_H_
