// The scheduler in-process on port 0 over a fresh PostgreSQL database, called through real
// gRPC: what a new user's oversized or odd submissions get back, and paging through the runs of
// a large sweep, from the API and from the `scalelab` client (status, export).
#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>
#include <sstream>
#include <string>

#include "scalelab/v1/sweep.grpc.pb.h"
#include "scheduler/scheduler.h"
#include "scheduler/sweep_service.h"
#include "services/api/grpc_server.h"
#include "services/api/status_util.h"
#include "services/cli/commands.h"
#include "services/cli/results_commands.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

class InProcessScheduler {
 public:
  InProcessScheduler() {
    SchedulerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.metrics_address = "";
    options.database_url = scalelab::testing::FreshDatabaseUrl();
    auto started = Scheduler::Start(options);
    INFO(started.status().ToString());
    REQUIRE(started.ok());
    scheduler_ = *std::move(started);
    address_ = "127.0.0.1:" + std::to_string(scheduler_->grpc_port());
    sweeps_ = v1::SweepService::NewStub(services::MakeChannel(address_));
  }
  ~InProcessScheduler() { scheduler_->Shutdown(); }

  grpc::Status Submit(const std::string& manifest, const std::string& manifest_name,
                      v1::SubmitSweepResponse* response) {
    v1::SubmitSweepRequest request;
    request.set_manifest_yaml(manifest);
    request.set_manifest_name(manifest_name);
    grpc::ClientContext context;
    return sweeps_->SubmitSweep(&context, request, response);
  }

  v1::SweepService::Stub& sweeps() { return *sweeps_; }
  const std::string& address() const { return address_; }

 private:
  std::unique_ptr<Scheduler> scheduler_;
  std::string address_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
};

// A valid manifest but for `name`; `grid` is the YAML flow map of sweep.grid.
std::string Manifest(const std::string& name, const std::string& grid = "{model.d_model: [32]}") {
  return "name: " + name +
         "\n"
         "project: tests\n"
         "kind: pretrain\n"
         "base:\n"
         "  model: {family: transformer, n_layers: 1, n_heads: 4, seq_len: 32}\n"
         "  data: {sources: {corpus: data/corpus}}\n"
         "  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}\n"
         "sweep:\n"
         "  grid: " +
         grid + "\n";
}

TEST_CASE("A manifest over 1 MiB is refused with INVALID_ARGUMENT naming the limit",
          "[pg][scheduler]") {
  InProcessScheduler scheduler;
  v1::SubmitSweepResponse response;
  // A 2 MB name: before, the refusal echoed it whole and the client saw only the transport's
  // "received initial metadata size exceeds limit".
  grpc::Status status =
      scheduler.Submit(Manifest(std::string(2 << 20, 'n')), "big.yaml", &response);
  INFO(status.error_message().substr(0, 300));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message().find("1048576 bytes (1 MiB)") != std::string::npos);
  CHECK(status.error_message().size() < 1000);
}

TEST_CASE("A 900 KB name under the size limit is refused with the value cut short",
          "[pg][scheduler]") {
  InProcessScheduler scheduler;
  v1::SubmitSweepResponse response;
  grpc::Status status =
      scheduler.Submit(Manifest(std::string(900 * 1000, 'n')), "long-name.yaml", &response);
  INFO(status.error_message().substr(0, 300));
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message().rfind("long-name.yaml:1: name:", 0) == 0);
  CHECK(status.error_message().find("more bytes)") != std::string::npos);
  CHECK(status.error_message().size() < 1000);
}

TEST_CASE("A refusal that would echo a huge file name still arrives, cut to a few KB",
          "[pg][scheduler]") {
  InProcessScheduler scheduler;
  v1::SubmitSweepResponse response;
  // Errors start with the manifest name, which nothing caps before ToGrpcStatus does.
  const std::string name(512 * 1024, 'f');
  grpc::Status status = scheduler.Submit("name: [not, a, name]\n", name, &response);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message().size() <= services::kMaxStatusMessageBytes);
  CHECK(status.error_message().find("more bytes)") != std::string::npos);
}

TEST_CASE("The runs of a 2,500-run sweep come in pages with a total, and the CLI says so",
          "[pg][scheduler]") {
  InProcessScheduler scheduler;
  // 50 x 50 = 2,500 runs.
  std::string d_models, tokens;
  for (int i = 1; i <= 50; ++i) {
    d_models += (i > 1 ? ", " : "") + std::to_string(8 * i);  // even head widths (RoPE)
    tokens += (i > 1 ? ", " : "") + std::to_string(100000 + i);
  }
  v1::SubmitSweepResponse submitted;
  grpc::Status status = scheduler.Submit(
      Manifest("paged", "{model.d_model: [" + d_models + "], train.tokens: [" + tokens + "]}"),
      "paged.yaml", &submitted);
  INFO(status.error_message());
  REQUIRE(status.ok());
  const int64_t sweep_id = submitted.sweep().id();
  REQUIRE(submitted.sweep().total_runs() == 2500);

  SECTION("through the API") {
    v1::ListRunsRequest request;
    request.set_sweep_id(sweep_id);
    request.set_page_size(1000);
    int seen = 0;
    int pages = 0;
    while (true) {
      v1::ListRunsResponse page;
      grpc::ClientContext context;
      REQUIRE(scheduler.sweeps().ListRuns(&context, request, &page).ok());
      CHECK(page.total_count() == 2500);
      for (const v1::Run& run : page.runs()) CHECK(run.index() == seen++);
      ++pages;
      if (page.next_page_token().empty() || pages > 5) break;
      request.set_page_token(page.next_page_token());
    }
    CHECK(pages == 3);
    CHECK(seen == 2500);
  }

  SECTION("through scalelab status") {
    cli::CliContext cli = cli::Connect(scheduler.address(), cli::OutputFormat::kTable);
    std::ostringstream out, err;
    cli.out = &out;
    cli.err = &err;
    REQUIRE(cli::Status(cli, sweep_id) == 0);
    CHECK(out.str().find("showing 1000 of 2500 runs; --all lists every run") != std::string::npos);

    std::ostringstream all;
    cli.out = &all;
    REQUIRE(cli::Status(cli, sweep_id, /*all_runs=*/true) == 0);
    const std::string text = all.str();
    CHECK(text.find("showing") == std::string::npos);
    // The headline, the header and one row per run.
    CHECK(std::count(text.begin(), text.end(), '\n') == 2 + 2500);
  }

  SECTION("through scalelab export") {
    cli::CliContext cli = cli::Connect(scheduler.address(), cli::OutputFormat::kTable);
    std::ostringstream out, err;
    cli.out = &out;
    cli.err = &err;
    cli::ExportOptions options;
    options.sweep_id = sweep_id;
    REQUIRE(cli::Export(cli, options) == 0);
    const std::string csv = out.str();
    CHECK(csv.rfind("run_id,index,state,model.d_model,train.tokens,n_params,", 0) == 0);
    CHECK(std::count(csv.begin(), csv.end(), '\n') == 1 + 2500);  // every page
    CHECK(csv.find(",2499,PENDING,400,100050,") != std::string::npos);

    // No run has reported a point yet: an empty list, not an error.
    std::ostringstream points;
    cli.out = &points;
    options.rows = "points";
    options.format = "json";
    REQUIRE(cli::Export(cli, options) == 0);
    CHECK(points.str() == "[]\n");
    CHECK(err.str().empty());
  }
}

}  // namespace
}  // namespace scalelab::scheduler
