#include "services/cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/api/grpc_server.h"
#include "services/cli/calls.h"
#include "services/cli/format.h"
#include "services/common/run_state.h"

namespace scalelab::cli {
namespace {

using services::RunStateName;
using services::SweepStateName;

// Fraction of a run's training tokens done; terminal runs count as done.
double Progress(const v1::Run& run) {
  if (services::IsTerminal(run.state())) return 1.0;
  double target = run.config().train().tokens();
  return target > 0 ? std::min(1.0, run.tokens() / target) : 0.0;
}

std::string Bar(double fraction, int width) {
  int filled = static_cast<int>(std::round(fraction * width));
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "]");
}

}  // namespace

CliContext Connect(const std::string& address, OutputFormat output) {
  CliContext cli;
  auto channel = services::MakeChannel(address);
  cli.sweeps = v1::SweepService::NewStub(channel);
  cli.results = v1::ResultsService::NewStub(channel);
  cli.queue = v1::QueueService::NewStub(channel);
  cli.output = output;
  cli.address = address;
  cli.out_is_terminal = ::isatty(STDOUT_FILENO) == 1;
  return cli;
}

int Submit(CliContext& cli, const std::string& manifest_path, const std::string& idempotency_key) {
  std::error_code ec;
  if (std::filesystem::is_directory(manifest_path, ec)) {
    *cli.err << "scalelab: submit: " << manifest_path << " is a folder, not a manifest file\n";
    return 2;
  }
  std::ifstream in(manifest_path, std::ios::binary);
  if (!in) {
    *cli.err << "scalelab: submit: cannot read " << manifest_path << ": " << std::strerror(errno)
             << "\n";
    return 2;
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    *cli.err << "scalelab: submit: reading " << manifest_path << " failed\n";
    return 2;
  }
  // Protobuf refuses to send a string field that is not UTF-8, and says only that
  // serialization failed; say which byte it is while the file is at hand.
  if (std::optional<Utf8Error> bad = FindInvalidUtf8(text)) {
    *cli.err << absl::StrFormat(
        "scalelab: submit: %s: not UTF-8 text: byte offset %d (line %d) is 0x%02X; save the "
        "manifest as UTF-8\n",
        manifest_path, bad->offset, bad->line, bad->byte);
    return 2;
  }
  v1::SubmitSweepRequest request;
  request.set_manifest_yaml(text);
  // The name only labels errors; a file name that is not UTF-8 must not stop the submission.
  request.set_manifest_name(ToValidUtf8(manifest_path));
  request.set_idempotency_key(idempotency_key);
  v1::SubmitSweepResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.sweeps->SubmitSweep(&context, request, &response);
  if (!status.ok()) return Fail(cli, "submit", status);
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(response) << "\n";
  } else {
    *cli.out << (response.created() ? "created" : "already submitted") << " sweep "
             << response.sweep().id() << " (" << response.sweep().name() << ", "
             << response.sweep().total_runs() << " runs)\n";
  }
  return 0;
}

int Status(CliContext& cli, int64_t sweep_id, bool all_runs) {
  if (sweep_id == 0) {
    v1::ListSweepsRequest request;
    v1::ListSweepsResponse response;
    grpc::ClientContext context;
    grpc::Status status = cli.sweeps->ListSweeps(&context, request, &response);
    if (!status.ok()) return Fail(cli, "status", status);
    if (cli.output == OutputFormat::kJson) {
      *cli.out << Json(response) << "\n";
    } else {
      PrintSweeps(*cli.out, {response.sweeps().begin(), response.sweeps().end()});
    }
    return 0;
  }
  v1::GetSweepRequest get;
  get.set_sweep_id(sweep_id);
  v1::Sweep sweep;
  grpc::ClientContext context;
  grpc::Status status = cli.sweeps->GetSweep(&context, get, &sweep);
  if (!status.ok()) return Fail(cli, "status", status);
  v1::ListRunsRequest list;
  list.set_sweep_id(sweep_id);
  RunListing listing;
  status = FetchRuns(cli, list, all_runs, &listing);
  if (!status.ok()) return Fail(cli, "status", status);
  const std::string note = ShowingNote(listing.runs.size(), listing.total_count);
  if (cli.output == OutputFormat::kJson) {
    v1::SweepEvent event;
    *event.mutable_sweep() = sweep;
    for (v1::Run& run : listing.runs) *event.add_runs() = std::move(run);
    *cli.out << Json(event) << "\n";
    if (!note.empty()) *cli.err << "scalelab: status: " << note << "\n";  // stdout stays JSON
    return 0;
  }
  *cli.out << SweepHeadline(sweep) << "\n";
  PrintRuns(*cli.out, listing.runs);
  if (!note.empty()) *cli.out << note << "\n";
  return 0;
}

int Queue(CliContext& cli, const std::string& project) {
  v1::ListQueueRequest request;
  request.set_project(project);
  v1::ListQueueResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.queue->ListQueue(&context, request, &response);
  if (!status.ok()) return Fail(cli, "queue", status);
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(response) << "\n";
    return 0;
  }
  *cli.out << response.pending() << " pending, " << response.admitted()
           << " admitted (waiting for their worker)\n";
  std::vector<std::vector<std::string>> rows;
  for (const v1::QueuedRun& run : response.runs()) {
    rows.push_back({run.priority(), std::to_string(run.position()), std::to_string(run.run_id()),
                    std::to_string(run.sweep_id()), run.project(),
                    std::to_string(std::max(run.ranks(), 1)), std::to_string(run.gpus()),
                    run.reason(), run.message()});
  }
  // GPUS is per rank: a gang of RANKS ranks holds RANKS x GPUS.
  PrintTable(*cli.out,
             {"CLASS", "POS", "RUN", "SWEEP", "PROJECT", "RANKS", "GPUS", "REASON", "WHY"}, rows);
  if (response.preemptions_size() > 0) {
    *cli.out << "\n" << response.preemptions_size() << " preemption(s) in flight\n";
    std::vector<std::vector<std::string>> preemptions;
    for (const v1::QueuedPreemption& preemption : response.preemptions()) {
      preemptions.push_back({std::to_string(preemption.victim_run_id()),
                             std::to_string(preemption.victim_attempt()),
                             std::to_string(preemption.preemptor_run_id()),
                             std::to_string(preemption.worker_id()), preemption.reason()});
    }
    PrintTable(*cli.out, {"VICTIM", "ATTEMPT", "FOR RUN", "WORKER", "REASON"}, preemptions);
  }
  return 0;
}

int Runs(CliContext& cli, int64_t sweep_id, const std::string& state, bool all_runs) {
  v1::ListRunsRequest request;
  request.set_sweep_id(sweep_id);
  if (!state.empty()) {
    auto parsed = services::ParseRunState(state);
    if (!parsed.ok()) {
      *cli.err << "scalelab: runs: --state: " << parsed.status().message() << "\n";
      return 2;
    }
    request.set_state(*parsed);
  }
  RunListing listing;
  grpc::Status status = FetchRuns(cli, request, all_runs, &listing);
  if (!status.ok()) return Fail(cli, "runs", status);
  const std::string note = ShowingNote(listing.runs.size(), listing.total_count);
  if (cli.output == OutputFormat::kJson) {
    // total_count and next_page_token tell a script whether it got everything.
    v1::ListRunsResponse response;
    for (v1::Run& run : listing.runs) *response.add_runs() = std::move(run);
    response.set_total_count(listing.total_count);
    response.set_next_page_token(listing.next_page_token);
    *cli.out << Json(response) << "\n";
    if (!note.empty()) *cli.err << "scalelab: runs: " << note << "\n";
    return 0;
  }
  PrintRuns(*cli.out, listing.runs);
  if (!note.empty()) *cli.out << note << "\n";
  return 0;
}

int Watch(CliContext& cli, int64_t sweep_id) {
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  grpc::ClientContext context;
  auto reader = cli.sweeps->WatchSweep(&context, request);
  std::ostream& out = *cli.out;
  const bool redraw = cli.out_is_terminal && cli.output == OutputFormat::kTable;
  v1::SweepEvent event;
  int lines_drawn = 0;
  std::string last_counts;  // without a terminal, print a line on a state change or every 10 %
  int last_decile = -1;
  while (reader->Read(&event)) {
    if (cli.output == OutputFormat::kJson) {
      out << JsonLine(event) << std::endl;
      continue;
    }
    double done = 0;
    for (const v1::Run& run : event.runs()) done += Progress(run);
    double fraction = event.runs_size() > 0 ? done / event.runs_size() : 1.0;
    std::vector<std::string> lines;
    lines.push_back(absl::StrFormat("sweep %d %s  %s %5.1f%%  %s  %s", event.sweep().id(),
                                    event.sweep().name(), Bar(fraction, 30), 100 * fraction,
                                    SweepStateName(event.sweep().state()), Counts(event.sweep())));
    for (const v1::Run& run : event.runs()) {
      lines.push_back(absl::StrFormat("  run %-4d %-10s %s step %-6d val %-7s %s", run.id(),
                                      RunStateName(run.state()), Bar(Progress(run), 20), run.step(),
                                      Loss(run.val_loss()), Overrides(run)));
    }
    if (redraw) {
      // Redraw in place: move up over the previous frame and clear to the end of the screen.
      if (lines_drawn > 0) out << "\x1b[" << lines_drawn << "A\x1b[J";
      for (const std::string& line : lines) out << line << "\n";
      lines_drawn = static_cast<int>(lines.size());
    } else {
      std::string counts = Counts(event.sweep()) + SweepStateName(event.sweep().state());
      int decile = static_cast<int>(fraction * 10);
      if (counts != last_counts || decile != last_decile) {
        out << lines.front() << "\n";
        last_counts = counts;
        last_decile = decile;
      }
    }
    out.flush();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Fail(cli, "watch", status);
  return 0;
}

int Metrics(CliContext& cli, int64_t run_id, const std::string& format, const std::string& names) {
  if (format != "csv" && format != "json") {
    *cli.err << "scalelab: metrics: --format: expected csv or json, got \"" << format << "\"\n";
    return 2;
  }
  v1::GetRunMetricsRequest request;
  request.set_run_id(run_id);
  for (absl::string_view name : absl::StrSplit(names, ',', absl::SkipEmpty())) {
    request.add_names(std::string(name));
  }
  v1::GetRunMetricsResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.results->GetRunMetrics(&context, request, &response);
  if (!status.ok()) return Fail(cli, "metrics", status);
  if (format == "json") {
    *cli.out << Json(response) << "\n";
  } else {
    PrintMetricsCsv(*cli.out, run_id, response);
  }
  return 0;
}

int Artifacts(CliContext& cli, int64_t run_id) {
  v1::ListArtifactsRequest request;
  request.set_run_id(run_id);
  v1::ListArtifactsResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.results->ListArtifacts(&context, request, &response);
  if (!status.ok()) return Fail(cli, "artifacts", status);
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(response) << "\n";
  } else if (response.artifacts().empty()) {
    *cli.out << "run " << run_id << " has no artifacts yet\n";
  } else {
    PrintArtifacts(*cli.out, {response.artifacts().begin(), response.artifacts().end()});
  }
  return 0;
}

int Cancel(CliContext& cli, int64_t sweep_id, const std::string& reason) {
  v1::CancelSweepRequest request;
  request.set_sweep_id(sweep_id);
  request.set_reason(reason);
  v1::Sweep sweep;
  grpc::ClientContext context;
  grpc::Status status = cli.sweeps->CancelSweep(&context, request, &sweep);
  if (!status.ok()) return Fail(cli, "cancel", status);
  if (cli.output == OutputFormat::kJson) {
    *cli.out << Json(sweep) << "\n";
  } else {
    *cli.out << "sweep " << sweep.id() << " " << SweepStateName(sweep.state()) << ", "
             << Counts(sweep) << "\n";
  }
  return 0;
}

}  // namespace scalelab::cli
