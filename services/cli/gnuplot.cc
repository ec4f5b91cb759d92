#include "services/cli/gnuplot.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

extern char** environ;

namespace scalelab::cli {
namespace {

constexpr size_t kMaxStderrBytes = 4000;  // of gnuplot's stderr in an error

// A gnuplot single-quoted string: nothing is escaped inside but the quote itself, doubled.
std::string Quote(absl::string_view text) {
  std::string single_line = absl::StrReplaceAll(text, {{"\n", " "}, {"\r", " "}});
  return absl::StrCat("'", absl::StrReplaceAll(single_line, {{"'", "''"}}), "'");
}

std::string Num(double value) { return absl::StrFormat("%.9g", value); }

bool AllRunsHaveN(const PlotData& data) {
  for (const RunSeries& run : data.runs) {
    if (!(run.n_params > 0)) return false;
  }
  return true;
}

// A data block of runs, one blank line between runs so that lines do not join them up; the
// third column is the colour: log10 N for the palette, or the run's ordinal.
void AppendRunsBlock(std::string* script, const std::string& name, const PlotData& data,
                     const std::string& group, bool colour_by_n) {
  absl::StrAppend(script, "$", name, " << EOD\n");
  int ordinal = 0;
  for (const RunSeries& run : data.runs) {
    if (run.group != group) continue;
    ++ordinal;
    absl::StrAppend(script, "# run ", run.run_id, "\n");
    const double colour = colour_by_n ? std::log10(run.n_params) : ordinal;
    for (const XY& xy : run.points) {
      absl::StrAppend(script, Num(xy.x), " ", Num(xy.y), " ", Num(colour), "\n");
    }
    absl::StrAppend(script, "\n");
  }
  absl::StrAppend(script, "EOD\n");
}

void AppendXYBlock(std::string* script, const std::string& name, const std::vector<XY>& points) {
  absl::StrAppend(script, "$", name, " << EOD\n");
  for (const XY& xy : points) absl::StrAppend(script, Num(xy.x), " ", Num(xy.y), "\n");
  absl::StrAppend(script, "EOD\n");
}

std::string YLabel(const std::string& metric) {
  return absl::EndsWith(metric, "loss") ? absl::StrCat(metric, " (nats/token)") : metric;
}

bool HasFrontierPanel(const PlotData& data) {
  if (data.axis != PlotAxis::kCompute) return false;
  if (!data.frontiers.empty() || !data.allocations.empty()) return true;
  for (const IsoFlopMinimum& minimum : data.isoflop) {
    if (minimum.n_params > 0) return true;
  }
  return false;
}

// Up to about `count` round values (1, 2, 2.5 or 5 times a power of ten apart) within
// [lo, hi]: the y tics of a log axis spanning less than a decade or two, where gnuplot's own
// tics (decades) would leave the curves without a label.
std::vector<double> RoundTics(double lo, double hi, int count) {
  std::vector<double> tics;
  if (!(hi > lo) || count < 1) return tics;
  const double raw = (hi - lo) / count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (double factor : {1.0, 2.0, 2.5, 5.0}) {
    if (factor * magnitude >= raw) {
      step = factor * magnitude;
      break;
    }
  }
  for (double tic = std::ceil(lo / step) * step; tic <= hi * (1 + 1e-12); tic += step) {
    tics.push_back(tic);
  }
  return tics;
}

// The y range of the main panel: every curve, law line and minimum, padded by a few percent
// (of the log range) so that nothing sits on the frame.
std::string YRangeCommands(const PlotData& data) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = 0;
  auto take = [&](const std::vector<XY>& points) {
    for (const XY& xy : points) {
      lo = std::min(lo, xy.y);
      hi = std::max(hi, xy.y);
    }
  };
  for (const RunSeries& run : data.runs) take(run.points);
  for (const LawLine& law : data.laws) take(law.points);
  if (!(hi >= lo) || !(lo > 0)) return "";
  const double pad = std::max(1.02, std::pow(hi / lo, 0.04));
  std::string commands = absl::StrCat("set yrange [", Num(lo / pad), ":", Num(hi * pad), "]\n");
  if (hi / lo < 30) {
    std::vector<std::string> tics;
    for (double tic : RoundTics(lo, hi, 6)) tics.push_back(absl::StrFormat("'%g' %.9g", tic, tic));
    if (!tics.empty()) absl::StrAppend(&commands, "set ytics (", absl::StrJoin(tics, ", "), ")\n");
  }
  return commands;
}

}  // namespace

absl::StatusOr<ImageFormat> ImageFormatOf(absl::string_view path) {
  const std::string lower = absl::AsciiStrToLower(path);
  if (absl::EndsWith(lower, ".svg") && lower.size() > 4) return ImageFormat::kSvg;
  if (absl::EndsWith(lower, ".png") && lower.size() > 4) return ImageFormat::kPng;
  return absl::InvalidArgumentError(
      absl::StrCat("--out: expected a file name ending in .svg or .png, got \"", path, "\""));
}

std::string GnuplotScript(const PlotData& data, const std::string& output_path,
                          ImageFormat format) {
  const bool frontier_panel = HasFrontierPanel(data);
  const bool by_group = !data.groups.empty() && data.axis == PlotAxis::kTokens;
  const bool colour_by_n = !by_group && AllRunsHaveN(data);
  std::string s = "# Written by `scalelab plot`; rerun with: gnuplot THIS_FILE\n";
  if (format == ImageFormat::kSvg) {
    absl::StrAppend(&s, "set terminal svg size 1000,", frontier_panel ? 1100 : 700,
                    " dynamic font 'Sans,12' background rgb 'white'\n");
  } else {
    absl::StrAppend(&s, "set terminal pngcairo size 1200,", frontier_panel ? 1300 : 850,
                    " font 'Sans,11' background rgb 'white'\n");
  }
  absl::StrAppend(&s, "set output ", Quote(output_path), "\n");
  // Run ids and group values are text, not markup: no "_" subscripts.
  absl::StrAppend(&s, "set termoption noenhanced\nset encoding utf8\n\n");

  if (by_group) {
    for (size_t group_idx = 0; group_idx < data.groups.size(); ++group_idx) {
      AppendRunsBlock(&s, absl::StrCat("group", group_idx), data, data.groups[group_idx], false);
    }
  } else {
    // Without groups every run has group "", so one block holds them all.
    AppendRunsBlock(&s, "runs", data, "", colour_by_n);
  }
  for (size_t idx = 0; idx < data.laws.size(); ++idx) {
    AppendXYBlock(&s, absl::StrCat("law", idx), data.laws[idx].points);
  }
  for (size_t idx = 0; idx < data.frontiers.size(); ++idx) {
    AppendXYBlock(&s, absl::StrCat("frontier", idx), data.frontiers[idx].points);
  }
  std::vector<XY> isoflop_loss;
  std::vector<XY> isoflop_n;
  for (const IsoFlopMinimum& minimum : data.isoflop) {
    isoflop_loss.push_back({minimum.flops, minimum.loss});
    if (minimum.n_params > 0) isoflop_n.push_back({minimum.flops, minimum.n_params});
  }
  if (!isoflop_loss.empty()) AppendXYBlock(&s, "isoflop", isoflop_loss);
  if (!isoflop_n.empty()) AppendXYBlock(&s, "isoflop_n", isoflop_n);
  if (!data.allocations.empty()) {
    absl::StrAppend(&s, "$allocations << EOD\n# C N_opt lo hi\n");
    for (const FrontierPoint& point : data.allocations) {
      const bool interval = std::isfinite(point.lo) && std::isfinite(point.hi);
      absl::StrAppend(&s, Num(point.flops), " ", Num(point.n_params), " ",
                      Num(interval ? point.lo : point.n_params), " ",
                      Num(interval ? point.hi : point.n_params), "\n");
    }
    absl::StrAppend(&s, "EOD\n");
  }

  const std::string x_label = data.axis == PlotAxis::kCompute
                                  ? "training compute C = flops_per_token x tokens (FLOPs)"
                                  : "training tokens D (tokens)";
  absl::StrAppend(&s, "\nset logscale xy\nset format x '%.0e'\n",
                  "set autoscale xfix\nset offsets graph 0.02, graph 0.02, 0, 0\n",
                  YRangeCommands(data), "set grid xtics ytics mxtics mytics lc rgb '#dddddd'\n",
                  "set key top right opaque box\n", "set xlabel ", Quote(x_label), "\n",
                  "set ylabel ", Quote(YLabel(data.metric)), "\n");
  if (frontier_panel) {
    // Both panels share the same frame left and right, so their x axes line up.
    absl::StrAppend(&s, "set multiplot layout 2,1 title ", Quote(data.title), "\n",
                    "set lmargin at screen 0.1\nset rmargin at screen 0.84\n", "set title ",
                    Quote(absl::StrCat(data.metric, " along each run")), "\n");
  } else {
    absl::StrAppend(&s, "set title ", Quote(data.title), "\n");
  }
  if (colour_by_n) {
    absl::StrAppend(&s,
                    "set palette defined (0 '#440154', 1 '#3b528b', 2 '#21918c', 3 '#5ec962', "
                    "4 '#fde725')\nset cblabel 'log10 N (non-embedding parameters)'\n");
  } else {
    absl::StrAppend(&s, "unset colorbox\n");
  }

  std::vector<std::string> clauses;
  if (by_group) {
    for (size_t group_idx = 0; group_idx < data.groups.size(); ++group_idx) {
      clauses.push_back(absl::StrCat("$group", group_idx, " using 1:2 with lines lw 1.2 lc ",
                                     group_idx + 1, " title ", Quote(data.groups[group_idx])));
    }
  } else if (colour_by_n) {
    clauses.push_back("$runs using 1:2:3 with lines lw 1.2 lc palette title 'runs (colour: N)'");
  } else {
    clauses.push_back("$runs using 1:2:3 with lines lw 1.2 lc variable title 'runs'");
  }
  for (size_t idx = 0; idx < data.laws.size(); ++idx) {
    clauses.push_back(absl::StrCat("$law", idx, " using 1:2 with lines lw 2.5 dt 2 lc rgb '",
                                   idx == 0 ? "black" : "#555555", "' title ",
                                   Quote(data.laws[idx].label)));
  }
  if (!isoflop_loss.empty()) {
    clauses.push_back(
        "$isoflop using 1:2 with points pt 7 ps 1.1 lc rgb '#d62728' title 'isoFLOP minima "
        "(lowest loss at each C)'");
  }
  absl::StrAppend(&s, "plot ", absl::StrJoin(clauses, ", \\\n     "), "\n");

  if (frontier_panel) {
    clauses.clear();
    absl::StrAppend(&s, "\nunset colorbox\nset title 'compute-optimal frontier'\n",
                    "set xrange [GPVAL_X_MIN:GPVAL_X_MAX]\nset offsets 0, 0, 0, 0\n",
                    "set ylabel 'N (non-embedding parameters)'\nset key top left opaque box\n",
                    "set autoscale y\nset ytics auto\nset format y '%.0e'\n");
    for (size_t idx = 0; idx < data.frontiers.size(); ++idx) {
      clauses.push_back(absl::StrCat("$frontier", idx, " using 1:2 with lines lw 2 lc ", idx + 1,
                                     " title ", Quote(data.frontiers[idx].label)));
    }
    if (!data.allocations.empty()) {
      clauses.push_back(
          "$allocations using 1:2:3:4 with yerrorbars pt 5 lc rgb 'black' title 'allocations "
          "N_opt (bootstrap interval)'");
    }
    if (!isoflop_n.empty()) {
      clauses.push_back(
          "$isoflop_n using 1:2 with points pt 7 ps 1.1 lc rgb '#d62728' title 'N of the "
          "isoFLOP minima'");
    }
    absl::StrAppend(&s, "plot ", absl::StrJoin(clauses, ", \\\n     "), "\n", "unset multiplot\n");
  }
  absl::StrAppend(&s, "set output\n");
  return s;
}

absl::Status RunGnuplot(const std::string& script_path, const GnuplotOptions& options) {
  // gnuplot's stderr goes to a file rather than a pipe: nothing to drain while waiting.
  char stderr_pattern[] = "/tmp/scalelab-gnuplot-stderr-XXXXXX";
  const int stderr_fd = ::mkstemp(stderr_pattern);
  if (stderr_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create a temporary file for gnuplot's stderr: ",
                                            std::strerror(errno)));
  }
  const std::string stderr_path = stderr_pattern;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, STDERR_FILENO);
  std::vector<std::string> argv_strings = {options.gnuplot, script_path};
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error =
      ::posix_spawnp(&pid, options.gnuplot.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(stderr_fd);
  auto read_stderr = [&stderr_path]() {
    std::ifstream in(stderr_path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::remove(stderr_path.c_str());
    if (text.size() > kMaxStderrBytes) {
      text = absl::StrCat("...", text.substr(text.size() - kMaxStderrBytes));
    }
    return std::string(absl::StripTrailingAsciiWhitespace(text));
  };
  if (spawn_error != 0) {
    read_stderr();
    if (spawn_error == ENOENT) {
      return absl::FailedPreconditionError(absl::StrCat(
          "gnuplot is not installed (cannot find \"", options.gnuplot,
          "\" on PATH); install it (apt-get install gnuplot-nox, brew install gnuplot) or put "
          "it on PATH"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start \"", options.gnuplot, "\": ", std::strerror(spawn_error)));
  }
  int wait_status = 0;
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));
  while (true) {
    const pid_t done = ::waitpid(pid, &wait_status, WNOHANG);
    if (done == pid) break;
    if (done < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("waiting for gnuplot: ", std::strerror(errno)));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &wait_status, 0);
      read_stderr();
      return absl::DeadlineExceededError(
          absl::StrFormat("gnuplot did not finish within %g s; killed it", options.timeout_s));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::string errors = read_stderr();
  if (WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) return absl::OkStatus();
  const std::string how = WIFEXITED(wait_status)
                              ? absl::StrCat("exited with status ", WEXITSTATUS(wait_status))
                              : absl::StrCat("was killed by signal ", WTERMSIG(wait_status));
  return absl::InternalError(
      absl::StrCat("gnuplot ", how, " on ", script_path, errors.empty() ? "" : ":\n", errors));
}

absl::StatusOr<std::string> RenderPlot(const PlotData& data, const std::string& output_path,
                                       bool keep_script, const GnuplotOptions& options) {
  absl::StatusOr<ImageFormat> format = ImageFormatOf(output_path);
  if (!format.ok()) return format.status();
  namespace fs = std::filesystem;
  const fs::path output(output_path);
  std::error_code ec;
  const fs::path folder = output.has_parent_path() ? output.parent_path() : fs::path(".");
  if (!fs::is_directory(folder, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--out: folder ", folder.string(), " does not exist"));
  }
  // The image goes to a temporary name beside the output and is renamed over it on success.
  const std::string temp_image =
      absl::StrCat(output_path, ".partial-", ::getpid(), output.extension().string());
  const std::string temp_script = absl::StrCat(output_path, ".partial-", ::getpid(), ".gp");
  {
    std::ofstream script(temp_script, std::ios::binary | std::ios::trunc);
    script << GnuplotScript(data, temp_image, *format);
    if (!script.good()) {
      std::remove(temp_script.c_str());
      return absl::InvalidArgumentError(
          absl::StrCat("--out: cannot write beside ", output_path, ": ", std::strerror(errno)));
    }
  }
  absl::Status status = RunGnuplot(temp_script, options);
  std::remove(temp_script.c_str());
  if (status.ok() && (fs::file_size(temp_image, ec) == 0 || ec)) {
    status = absl::InternalError(absl::StrCat("gnuplot ran but wrote nothing to ", temp_image));
  }
  if (!status.ok()) {
    std::remove(temp_image.c_str());
    return status;
  }
  fs::rename(temp_image, output, ec);
  if (ec) {
    std::remove(temp_image.c_str());
    return absl::InternalError(
        absl::StrCat("cannot move the plot to ", output_path, ": ", ec.message()));
  }
  if (!keep_script) return std::string();
  const std::string script_path = fs::path(output).replace_extension(".gp").string();
  std::ofstream script(script_path, std::ios::binary | std::ios::trunc);
  script << GnuplotScript(data, output_path, *format);
  if (!script.good()) {
    return absl::InternalError(absl::StrCat(
        "the plot is in ", output_path, " but the script could not be written to ", script_path));
  }
  return script_path;
}

}  // namespace scalelab::cli
