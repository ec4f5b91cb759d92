#include "services/cli/commands.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/grpc_server.h"
#include "services/run_state.h"

namespace scalelab::cli {
namespace {

using services::RunStateName;
using services::SweepStateName;

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

int Fail(const CliContext& cli, const char* what, const grpc::Status& status) {
  std::cerr << "scalelab: " << what << ": ";
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::cerr << "cannot reach the scheduler at " << cli.address << " (" << status.error_message()
              << "); start it or set --addr / SCALELAB_ADDR\n";
  } else {
    std::cerr << status.error_message() << "\n";
  }
  return 1;
}

std::string Loss(double value) { return std::isnan(value) ? "-" : absl::StrFormat("%.4f", value); }

std::string Tokens(double tokens) {
  if (tokens >= 1e9) return absl::StrFormat("%.2fG", tokens / 1e9);
  if (tokens >= 1e6) return absl::StrFormat("%.2fM", tokens / 1e6);
  if (tokens >= 1e3) return absl::StrFormat("%.1fk", tokens / 1e3);
  return absl::StrFormat("%.0f", tokens);
}

std::string Overrides(const v1::Run& run) {
  std::vector<std::string> parts;
  std::map<std::string, std::string> sorted(run.overrides().begin(), run.overrides().end());
  for (const auto& [key, value] : sorted) parts.push_back(absl::StrCat(key, "=", value));
  return absl::StrJoin(parts, " ");
}

// Left-aligned columns sized to their widest cell.
void PrintTable(const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t col = 0; col < header.size(); ++col) width[col] = header[col].size();
  for (const auto& row : rows) {
    for (size_t col = 0; col < row.size() && col < width.size(); ++col) {
      width[col] = std::max(width[col], row[col].size());
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t col = 0; col < row.size(); ++col) {
      absl::StrAppend(&line, row[col]);
      if (col + 1 < row.size()) line.append(width[col] - row[col].size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  print_row(header);
  for (const auto& row : rows) print_row(row);
}

std::string Counts(const v1::Sweep& sweep) {
  std::vector<std::string> parts;
  std::map<std::string, int> sorted(sweep.runs_by_state().begin(), sweep.runs_by_state().end());
  for (const auto& [state, count] : sorted) parts.push_back(absl::StrCat(state, ":", count));
  return absl::StrJoin(parts, " ");
}

void PrintRuns(const std::vector<v1::Run>& runs) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Run& run : runs) {
    rows.push_back({absl::StrCat(run.id()), absl::StrCat(run.index()), RunStateName(run.state()),
                    absl::StrCat(run.attempt()), absl::StrCat(run.step()), Tokens(run.tokens()),
                    Loss(run.train_loss()), Loss(run.val_loss()), Overrides(run)});
  }
  PrintTable(
      {"RUN", "IDX", "STATE", "ATTEMPT", "STEP", "TOKENS", "TRAIN_LOSS", "VAL_LOSS", "OVERRIDES"},
      rows);
}

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
  cli.output = output;
  cli.address = address;
  return cli;
}

int Submit(CliContext& cli, const std::string& manifest_path, const std::string& idempotency_key) {
  std::ifstream in(manifest_path);
  if (!in) {
    std::cerr << "scalelab: submit: cannot read " << manifest_path << "\n";
    return 2;
  }
  std::stringstream text;
  text << in.rdbuf();
  v1::SubmitSweepRequest request;
  request.set_manifest_yaml(text.str());
  request.set_manifest_name(manifest_path);
  request.set_idempotency_key(idempotency_key);
  v1::SubmitSweepResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.sweeps->SubmitSweep(&context, request, &response);
  if (!status.ok()) return Fail(cli, "submit", status);
  if (cli.output == OutputFormat::kJson) {
    std::cout << Json(response) << "\n";
  } else {
    std::cout << (response.created() ? "created" : "already submitted") << " sweep "
              << response.sweep().id() << " (" << response.sweep().name() << ", "
              << response.sweep().total_runs() << " runs)\n";
  }
  return 0;
}

int Status(CliContext& cli, int64_t sweep_id) {
  if (sweep_id == 0) {
    v1::ListSweepsRequest request;
    v1::ListSweepsResponse response;
    grpc::ClientContext context;
    grpc::Status status = cli.sweeps->ListSweeps(&context, request, &response);
    if (!status.ok()) return Fail(cli, "status", status);
    if (cli.output == OutputFormat::kJson) {
      std::cout << Json(response) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const v1::Sweep& sweep : response.sweeps()) {
      rows.push_back({absl::StrCat(sweep.id()), sweep.name(), sweep.project(),
                      SweepStateName(sweep.state()), absl::StrCat(sweep.total_runs()),
                      Counts(sweep)});
    }
    PrintTable({"SWEEP", "NAME", "PROJECT", "STATE", "RUNS", "BY_STATE"}, rows);
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
  v1::ListRunsResponse runs;
  grpc::ClientContext list_context;
  status = cli.sweeps->ListRuns(&list_context, list, &runs);
  if (!status.ok()) return Fail(cli, "status", status);
  if (cli.output == OutputFormat::kJson) {
    v1::SweepEvent event;
    *event.mutable_sweep() = sweep;
    *event.mutable_runs() = runs.runs();
    std::cout << Json(event) << "\n";
    return 0;
  }
  std::cout << "sweep " << sweep.id() << " " << sweep.name() << " (project " << sweep.project()
            << "): " << SweepStateName(sweep.state()) << ", " << Counts(sweep) << "\n";
  PrintRuns({runs.runs().begin(), runs.runs().end()});
  return 0;
}

int Runs(CliContext& cli, int64_t sweep_id, const std::string& state) {
  v1::ListRunsRequest request;
  request.set_sweep_id(sweep_id);
  if (!state.empty()) {
    auto parsed = services::ParseRunState(state);
    if (!parsed.ok()) {
      std::cerr << "scalelab: runs: --state: " << parsed.status().message() << "\n";
      return 2;
    }
    request.set_state(*parsed);
  }
  v1::ListRunsResponse response;
  grpc::ClientContext context;
  grpc::Status status = cli.sweeps->ListRuns(&context, request, &response);
  if (!status.ok()) return Fail(cli, "runs", status);
  if (cli.output == OutputFormat::kJson) {
    std::cout << Json(response) << "\n";
  } else {
    PrintRuns({response.runs().begin(), response.runs().end()});
  }
  return 0;
}

int Watch(CliContext& cli, int64_t sweep_id) {
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  grpc::ClientContext context;
  auto reader = cli.sweeps->WatchSweep(&context, request);
  const bool tty = ::isatty(STDOUT_FILENO) && cli.output == OutputFormat::kTable;
  v1::SweepEvent event;
  int lines_drawn = 0;
  std::string last_counts;  // without a terminal, print a line on a state change or every 10 %
  int last_decile = -1;
  while (reader->Read(&event)) {
    if (cli.output == OutputFormat::kJson) {
      google::protobuf::util::JsonPrintOptions options;
      options.preserve_proto_field_names = true;
      std::string line;
      (void)google::protobuf::util::MessageToJsonString(event, &line, options);
      std::cout << line << std::endl;
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
    if (tty) {
      // Redraw in place: move up over the previous frame and clear to the end of the screen.
      if (lines_drawn > 0) std::cout << "\x1b[" << lines_drawn << "A\x1b[J";
      for (const std::string& line : lines) std::cout << line << "\n";
      lines_drawn = static_cast<int>(lines.size());
    } else {
      std::string counts = Counts(event.sweep()) + SweepStateName(event.sweep().state());
      int decile = static_cast<int>(fraction * 10);
      if (counts != last_counts || decile != last_decile) {
        std::cout << lines.front() << "\n";
        last_counts = counts;
        last_decile = decile;
      }
    }
    std::cout.flush();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return Fail(cli, "watch", status);
  return 0;
}

int Metrics(CliContext& cli, int64_t run_id, const std::string& format, const std::string& names) {
  if (format != "csv" && format != "json") {
    std::cerr << "scalelab: metrics: --format: expected csv or json, got \"" << format << "\"\n";
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
    std::cout << Json(response) << "\n";
    return 0;
  }
  std::cout << "run_id,attempt,name,step,tokens,value,wall_time_s\n";
  for (const v1::MetricSeries& series : response.series()) {
    for (const v1::MetricPoint& point : series.points()) {
      std::cout << absl::StrFormat("%d,%d,%s,%d,%.17g,%.17g,%.6f\n", run_id, series.attempt(),
                                   series.name(), point.step(), point.tokens(), point.value(),
                                   point.wall_time_s());
    }
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
    std::cout << Json(sweep) << "\n";
  } else {
    std::cout << "sweep " << sweep.id() << " " << SweepStateName(sweep.state()) << ", "
              << Counts(sweep) << "\n";
  }
  return 0;
}

}  // namespace scalelab::cli
