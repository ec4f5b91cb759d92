// Artifacts end to end: the trainer writes its final weights, the worker reports them with size
// and checksum, the store lists them, and a run that names them starts from them.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runspec/spec_file.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

bool AllSucceeded(const std::vector<v1::Run>& runs) {
  if (runs.empty()) return false;
  for (const v1::Run& run : runs) {
    if (run.state() != v1::RUN_STATE_SUCCEEDED) return false;
  }
  return true;
}

std::vector<v1::Artifact> ListArtifacts(Stack& stack, int64_t run_id) {
  v1::ListArtifactsRequest request;
  request.set_run_id(run_id);
  v1::ListArtifactsResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.results().ListArtifacts(&context, request, &response);
  if (!status.ok()) FAIL("ListArtifacts: " << status.error_message());
  return {response.artifacts().begin(), response.artifacts().end()};
}

double FirstValue(Stack& stack, int64_t run_id, const std::string& name) {
  v1::GetRunMetricsRequest request;
  request.set_run_id(run_id);
  request.add_names(name);
  v1::GetRunMetricsResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.results().GetRunMetrics(&context, request, &response);
  if (!status.ok() || response.series_size() == 0 || response.series(0).points_size() == 0) {
    FAIL("no " << name << " for run " << run_id);
  }
  return response.series(0).points(0).value();
}

TEST_CASE("A run's final weights are recorded and a later run starts from them",
          "[integration][slow]") {
  Stack stack;
  stack.StartWorker(/*slots=*/1);
  const int64_t base_sweep =
      stack.Submit(stack.Manifest("base", 6e4, "{model.d_model: [16]}")).sweep().id();
  std::vector<v1::Run> base = stack.WaitForRuns(base_sweep, AllSucceeded, 240);
  REQUIRE(base.size() == 1);

  std::vector<v1::Artifact> artifacts = ListArtifacts(stack, base[0].id());
  REQUIRE(artifacts.size() == 1);
  const v1::Artifact& final_weights = artifacts[0];
  CHECK(final_weights.kind() == "final");
  CHECK(final_weights.attempt() == 1);
  CHECK(final_weights.step() > 0);
  CHECK(final_weights.size_bytes() > 0);
  CHECK(final_weights.sha256().size() == 64);
  REQUIRE(std::filesystem::exists(final_weights.location()));
  CHECK(static_cast<int64_t>(std::filesystem::file_size(final_weights.location())) ==
        final_weights.size_bytes());

  // The same model, started from the base run's weights through the grid's init.from_run.
  const int64_t tuned_sweep =
      stack
          .Submit(
              stack.Manifest("tuned", 2e4, absl::StrCat("{init.from_run: [", base[0].id(), "]}")))
          .sweep()
          .id();
  std::vector<v1::Run> tuned = stack.WaitForRuns(tuned_sweep, AllSucceeded, 240);
  REQUIRE(tuned.size() == 1);

  // The spec the worker wrote for the trainer names the resolved artifact.
  const std::string spec_path =
      absl::StrCat(stack.dir(), "/worker-0/run-", tuned[0].id(), "-1/spec.json");
  auto spec = runspec::ReadRunSpecFile(spec_path);
  REQUIRE(spec.ok());
  CHECK(spec->init_artifact().id() == final_weights.id());
  CHECK(spec->init_artifact().location() == final_weights.location());
  CHECK(spec->config().init().from_run() == base[0].id());

  // Starting from trained weights, the first reported loss is far below a fresh model's.
  const double fresh = FirstValue(stack, base[0].id(), "train_loss");
  const double warm = FirstValue(stack, tuned[0].id(), "train_loss");
  INFO("first train_loss: fresh " << fresh << ", from the base run's weights " << warm);
  CHECK(warm < fresh - 0.5);
}

TEST_CASE("A run naming weights that do not exist is refused at submission", "[integration]") {
  Stack stack;
  v1::SubmitSweepRequest request;
  request.set_manifest_yaml(stack.Manifest("missing-init", 2e4, "{init.from_run: [424242]}"));
  request.set_manifest_name("test.yaml");
  v1::SubmitSweepResponse response;
  grpc::ClientContext context;
  grpc::Status status = stack.sweeps().SubmitSweep(&context, request, &response);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message() == "init.from_run: expected the id of an existing run, got 424242");
}

}  // namespace
}  // namespace scalelab::testing
