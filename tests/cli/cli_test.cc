// What `scalelab` prints, against fake SweepService and ResultsService servers on port 0 (real
// gRPC, canned answers), and the pure formatting and text checks behind it.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "services/api/grpc_server.h"
#include "services/cli/commands.h"
#include "services/cli/format.h"

namespace scalelab::cli {
namespace {

// A sweep of `total_runs` runs served 1000 a page, like the scheduler.
class FakeSweeps final : public v1::SweepService::Service {
 public:
  int total_runs = 3;
  bool pipeline = false;  // runs after the first are an "sft" stage started from run 100
  grpc::Status submit_status = grpc::Status::OK;
  std::atomic<int> submits{0};

  grpc::Status SubmitSweep(grpc::ServerContext*, const v1::SubmitSweepRequest* request,
                           v1::SubmitSweepResponse* response) override {
    ++submits;
    if (!submit_status.ok()) return submit_status;
    response->set_created(true);
    response->mutable_sweep()->set_id(7);
    response->mutable_sweep()->set_name("fake");
    response->mutable_sweep()->set_total_runs(total_runs);
    return grpc::Status::OK;
  }

  grpc::Status GetSweep(grpc::ServerContext*, const v1::GetSweepRequest* request,
                        v1::Sweep* sweep) override {
    if (request->sweep_id() != 7) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no sweep");
    sweep->set_id(7);
    sweep->set_name("fake");
    sweep->set_project("tests");
    sweep->set_state(v1::SWEEP_STATE_RUNNING);
    sweep->set_total_runs(total_runs);
    (*sweep->mutable_runs_by_state())["PENDING"] = total_runs;
    return grpc::Status::OK;
  }

  grpc::Status ListRuns(grpc::ServerContext*, const v1::ListRunsRequest* request,
                        v1::ListRunsResponse* response) override {
    int start = 0;
    if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &start)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "page_token");
    }
    const int end = std::min(total_runs, start + 1000);
    for (int index = start; index < end; ++index) {
      v1::Run* run = response->add_runs();
      run->set_id(100 + index);
      run->set_sweep_id(7);
      run->set_index(index);
      run->set_state(v1::RUN_STATE_PENDING);
      run->set_train_loss(std::nan(""));
      run->set_val_loss(index == 0 ? 2.5 : std::nan(""));
      (*run->mutable_overrides())["model.d_model"] = std::to_string(32 * (index + 1));
      if (pipeline && index > 0) {
        run->set_kind(v1::RUN_KIND_SFT);
        run->set_stage("sft");
        run->set_parent_run_id(100);
      }
    }
    if (end < total_runs) response->set_next_page_token(std::to_string(end));
    response->set_total_count(total_runs);
    return grpc::Status::OK;
  }
};

class FakeResults final : public v1::ResultsService::Service {
 public:
  grpc::Status ListArtifacts(grpc::ServerContext*, const v1::ListArtifactsRequest* request,
                             v1::ListArtifactsResponse* response) override {
    if (request->run_id() != 101) return grpc::Status::OK;  // no artifacts
    v1::Artifact* checkpoint = response->add_artifacts();
    checkpoint->set_id(1);
    checkpoint->set_run_id(101);
    checkpoint->set_attempt(1);
    checkpoint->set_step(500);
    checkpoint->set_kind("checkpoint");
    checkpoint->set_size_bytes(3 * 1024 * 1024 / 2);
    checkpoint->set_sha256(std::string(64, 'a'));
    checkpoint->set_location("/runs/101/1/checkpoints/step-500.pt");
    v1::Artifact* final_weights = response->add_artifacts();
    final_weights->set_id(2);
    final_weights->set_run_id(101);
    final_weights->set_attempt(2);
    final_weights->set_step(1000);
    final_weights->set_kind("final");
    final_weights->set_size_bytes(512);
    final_weights->set_sha256("0123456789abcdef" + std::string(48, '0'));
    final_weights->set_location("/runs/101/2/final.pt");
    return grpc::Status::OK;
  }

  grpc::Status GetRunMetrics(grpc::ServerContext*, const v1::GetRunMetricsRequest* request,
                             v1::GetRunMetricsResponse* response) override {
    v1::MetricSeries* series = response->add_series();
    series->set_name("train_loss");
    series->set_attempt(1);
    v1::MetricPoint* point = series->add_points();
    point->set_step(10);
    point->set_tokens(4096);
    point->set_value(3.25);
    point->set_wall_time_s(1.5);
    return grpc::Status::OK;
  }
};

// The fakes on a real socket, and a CliContext printing into strings.
class Fixture {
 public:
  Fixture() {
    auto server = services::StartGrpcServer("127.0.0.1:0", {&sweeps, &results});
    REQUIRE(server.ok());
    server_ = std::move(server->server);
    cli = Connect("127.0.0.1:" + std::to_string(server->port), OutputFormat::kTable);
    cli.out = &out;
    cli.err = &err;
  }
  ~Fixture() { server_->Shutdown(); }

  FakeSweeps sweeps;
  FakeResults results;
  CliContext cli;
  std::ostringstream out;
  std::ostringstream err;

 private:
  std::unique_ptr<grpc::Server> server_;
};

size_t Lines(const std::string& text) { return std::count(text.begin(), text.end(), '\n'); }

// A file under /tmp holding `contents`, removed at the end of the test.
class TempFile {
 public:
  explicit TempFile(const std::string& contents) {
    char pattern[] = "/tmp/scalelab_cli_test_XXXXXX";
    int fd = ::mkstemp(pattern);
    REQUIRE(fd >= 0);
    ::close(fd);
    path_ = pattern;
    std::ofstream(path_, std::ios::binary) << contents;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST_CASE("status of a sweep prints its headline and one row per run", "[unit][cli]") {
  Fixture f;
  REQUIRE(Status(f.cli, 7) == 0);
  const std::string text = f.out.str();
  CHECK(text.rfind("sweep 7 fake (project tests): RUNNING, PENDING:3\n", 0) == 0);
  CHECK(text.find("RUN  IDX  STAGE  PARENT  STATE    ATTEMPT  STEP  TOKENS  TRAIN_LOSS  VAL_LOSS  "
                  "OVERRIDES") != std::string::npos);
  CHECK(text.find("100  0    main   -       PENDING  0        0     0       -           2.5000    "
                  "model.d_model=32") != std::string::npos);
  CHECK(Lines(text) == 2 + 3);
  CHECK(text.find("showing") == std::string::npos);
}

TEST_CASE("status of a 2,500-run sweep says it shows 1000 of them, and --all shows every one",
          "[unit][cli]") {
  Fixture f;
  f.sweeps.total_runs = 2500;
  REQUIRE(Status(f.cli, 7) == 0);
  CHECK(Lines(f.out.str()) == 2 + 1000 + 1);
  CHECK(f.out.str().find("showing 1000 of 2500 runs; --all lists every run\n") !=
        std::string::npos);

  std::ostringstream all;
  f.cli.out = &all;
  REQUIRE(Status(f.cli, 7, /*all_runs=*/true) == 0);
  CHECK(Lines(all.str()) == 2 + 2500);
  CHECK(all.str().find("showing") == std::string::npos);
  CHECK(all.str().find("\n2599 ") != std::string::npos);  // the last run, id 100 + 2499
}

TEST_CASE("status --output=json stays JSON and notes a partial list on stderr", "[unit][cli]") {
  Fixture f;
  f.sweeps.total_runs = 1200;
  f.cli.output = OutputFormat::kJson;
  REQUIRE(Status(f.cli, 7) == 0);
  CHECK(f.out.str().rfind("{", 0) == 0);
  CHECK(f.out.str().find("\"runs\"") != std::string::npos);
  CHECK(f.err.str() == "scalelab: status: showing 1000 of 1200 runs; --all lists every run\n");
}

TEST_CASE("runs of a pipeline show each run's stage and the run it starts from", "[unit][cli]") {
  Fixture f;
  f.sweeps.pipeline = true;
  REQUIRE(Runs(f.cli, 7, "") == 0);
  const std::string text = f.out.str();
  CHECK(text.find("100  0    main   -       PENDING") != std::string::npos);
  CHECK(text.find("101  1    sft    100     PENDING") != std::string::npos);
  CHECK(text.find("102  2    sft    100     PENDING") != std::string::npos);
}

TEST_CASE("runs --output=json carries total_count and next_page_token", "[unit][cli]") {
  Fixture f;
  f.sweeps.total_runs = 1001;
  f.cli.output = OutputFormat::kJson;
  REQUIRE(Runs(f.cli, 7, "") == 0);
  CHECK(f.out.str().find("\"total_count\": \"1001\"") != std::string::npos);
  CHECK(f.out.str().find("\"next_page_token\": \"1000\"") != std::string::npos);

  std::ostringstream all;
  f.cli.out = &all;
  REQUIRE(Runs(f.cli, 7, "", /*all_runs=*/true) == 0);
  CHECK(all.str().find("next_page_token") == std::string::npos);  // empty: everything is here
}

TEST_CASE("artifacts prints id, attempt, step, kind, size, a sha256 prefix and the location",
          "[unit][cli]") {
  Fixture f;
  REQUIRE(Artifacts(f.cli, 101) == 0);
  CHECK(f.out.str() ==
        "ARTIFACT  ATTEMPT  STEP  KIND        SIZE     SHA256        LOCATION\n"
        "1         1        500   checkpoint  1.5 MiB  aaaaaaaaaaaa  "
        "/runs/101/1/checkpoints/step-500.pt\n"
        "2         2        1000  final       512 B    0123456789ab  /runs/101/2/final.pt\n");

  SECTION("as JSON, with every field") {
    std::ostringstream json;
    f.cli.out = &json;
    f.cli.output = OutputFormat::kJson;
    REQUIRE(Artifacts(f.cli, 101) == 0);
    CHECK(json.str().find("\"sha256\": \"0123456789abcdef000") != std::string::npos);
    CHECK(json.str().find("\"size_bytes\": \"1572864\"") != std::string::npos);
    CHECK(json.str().find("\"kind\": \"final\"") != std::string::npos);
  }
  SECTION("a run without artifacts says so") {
    std::ostringstream none;
    f.cli.out = &none;
    REQUIRE(Artifacts(f.cli, 102) == 0);
    CHECK(none.str() == "run 102 has no artifacts yet\n");
  }
}

TEST_CASE("metrics prints CSV with a header, and refuses an unknown format", "[unit][cli]") {
  Fixture f;
  REQUIRE(Metrics(f.cli, 101, "csv", "") == 0);
  CHECK(f.out.str() ==
        "run_id,attempt,name,step,tokens,value,wall_time_s\n"
        "101,1,train_loss,10,4096,3.25,1.500000\n");
  CHECK(Metrics(f.cli, 101, "xml", "") == 2);
  CHECK(f.err.str() == "scalelab: metrics: --format: expected csv or json, got \"xml\"\n");
}

TEST_CASE("submit refuses a manifest that is not UTF-8, naming the file and the byte offset",
          "[unit][cli]") {
  Fixture f;
  TempFile manifest("name: caf\xE9\nproject: tests\n");  // Latin-1 é
  CHECK(Submit(f.cli, manifest.path(), "") == 2);
  CHECK(f.err.str() == "scalelab: submit: " + manifest.path() +
                           ": not UTF-8 text: byte offset 9 (line 1) is 0xE9; save the manifest "
                           "as UTF-8\n");
  CHECK(f.sweeps.submits == 0);  // nothing was sent
}

TEST_CASE("submit sends a UTF-8 manifest and reports the sweep", "[unit][cli]") {
  Fixture f;
  TempFile manifest("name: caf\xC3\xA9\n");
  REQUIRE(Submit(f.cli, manifest.path(), "") == 0);
  CHECK(f.out.str() == "created sweep 7 (fake, 3 runs)\n");
  CHECK(f.sweeps.submits == 1);
}

TEST_CASE("a refusal without a message still tells the user what happened", "[unit][cli]") {
  Fixture f;
  f.sweeps.submit_status = grpc::Status(grpc::StatusCode::INTERNAL, "");
  TempFile manifest("name: x\n");
  CHECK(Submit(f.cli, manifest.path(), "") == 1);
  CHECK(f.err.str() == "scalelab: submit: INTERNAL (the call failed without a message)\n");
}

TEST_CASE("submit of a missing file or a folder says which", "[unit][cli]") {
  Fixture f;
  CHECK(Submit(f.cli, "/nonexistent/sweep.yaml", "") == 2);
  CHECK(f.err.str().find("cannot read /nonexistent/sweep.yaml") != std::string::npos);
  CHECK(Submit(f.cli, "/tmp", "") == 2);
  CHECK(f.err.str().find("/tmp is a folder") != std::string::npos);
  CHECK(f.sweeps.submits == 0);
}

TEST_CASE("FindInvalidUtf8 accepts UTF-8 and points at the first bad sequence", "[unit][cli]") {
  CHECK_FALSE(FindInvalidUtf8("").has_value());
  CHECK_FALSE(FindInvalidUtf8("ascii\n\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80").has_value());
  struct Case {
    std::string text;
    size_t offset;
    int line;
  };
  const std::vector<Case> cases = {
      {"a\nb\n\xFF", 4, 3},        // never valid
      {"\xC0\xAF", 0, 1},          // overlong '/'
      {"ok\xED\xA0\x80", 2, 1},    // UTF-16 surrogate U+D800
      {"\xF4\x90\x80\x80", 0, 1},  // above U+10FFFF
      {"x\xE2\x82", 1, 1},         // cut short at the end
      {"\xC3\xA9\n\x80", 3, 2},    // a lone continuation byte
      {"\xE2\x82"
       "A",
       0, 1},  // a sequence interrupted
  };
  for (const Case& c : cases) {
    INFO(c.offset);
    auto bad = FindInvalidUtf8(c.text);
    REQUIRE(bad.has_value());
    CHECK(bad->offset == c.offset);
    CHECK(bad->line == c.line);
  }
  CHECK(ToValidUtf8("caf\xE9!") == "caf\xEF\xBF\xBD!");
}

TEST_CASE("sizes and the partial-list note read as a person expects", "[unit][cli]") {
  CHECK(Bytes(0) == "0 B");
  CHECK(Bytes(1023) == "1023 B");
  CHECK(Bytes(1536) == "1.5 KiB");
  CHECK(Bytes(int64_t{5} << 30) == "5.0 GiB");
  CHECK(ShowingNote(1000, 1000).empty());
  CHECK(ShowingNote(1000, 10000) == "showing 1000 of 10000 runs; --all lists every run");
}

}  // namespace
}  // namespace scalelab::cli
