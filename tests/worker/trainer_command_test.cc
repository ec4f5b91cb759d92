#include "worker/trainer_command.h"

#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>

namespace scalelab::worker {
namespace {

bool Has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

TEST_CASE("A run config becomes the trainer's command line", "[worker][unit]") {
  v1::RunConfig config;
  config.mutable_model()->set_d_model(64);
  config.mutable_model()->set_n_layers(2);
  config.mutable_model()->set_n_heads(4);
  config.mutable_model()->set_seq_len(64);
  config.mutable_train()->set_tokens(5e5);
  config.mutable_train()->set_batch_tokens(4096);
  config.mutable_train()->set_lr(3e-3);
  (*config.mutable_data()->mutable_sources())["web"] = "data/web";
  (*config.mutable_data()->mutable_sources())["abs"] = "/abs/path";
  (*config.mutable_data()->mutable_mixture())["web"] = 0.67;
  (*config.mutable_data()->mutable_mixture())["abs"] = 0.33;
  auto argv = BuildTrainerArgv({"/bin/scalelab-train", "/data", 2}, config);
  REQUIRE(argv.ok());
  CHECK((*argv)[0] == "/bin/scalelab-train");
  CHECK(Has(*argv, "--data_sources=abs=/abs/path,web=/data/data/web"));
  CHECK(Has(*argv, "--data_mixture=abs=0.33000000000000002,web=0.67000000000000004"));
  CHECK(Has(*argv, "--d_model=64"));
  CHECK(Has(*argv, "--tokens=500000"));
  CHECK(Has(*argv, "--batch_tokens=4096"));
  CHECK(Has(*argv, "--threads=2"));
  CHECK(Has(*argv, "--device=cpu"));
  CHECK(Has(*argv, "--schedule=cosine"));

  v1::RunConfig no_data;
  CHECK(absl::IsInvalidArgument(BuildTrainerArgv({"t", "", 1}, no_data).status()));
}

TEST_CASE("Trainer output lines parse into metric points", "[worker][unit]") {
  auto point = ParseMetricLine(
      R"({"step":12,"tokens":49152,"name":"train_loss","value":3.25,"wall_time_s":1.5})");
  REQUIRE(point.ok());
  CHECK(point->step() == 12);
  CHECK(point->tokens() == 49152);
  CHECK(point->name() == "train_loss");
  CHECK(point->value() == 3.25);
  CHECK(point->wall_time_s() == 1.5);
  CHECK(ParseMetricLine(R"({"step":1,"name":"x","value":1,"future_field":true})").ok());
  CHECK(absl::IsInvalidArgument(ParseMetricLine("loading data...").status()));
  CHECK(absl::IsInvalidArgument(ParseMetricLine(R"({"step":1,"value":2})").status()));
}

TEST_CASE("Exit statuses are classified for the retry policy", "[worker][unit]") {
  CHECK(ClassifyExit({0, 0}, false) == v1::FAILURE_CLASS_UNSPECIFIED);
  CHECK(ClassifyExit({2, 0}, false) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit({4, 0}, false) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit({127, 0}, false) == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  CHECK(ClassifyExit({-1, SIGKILL}, false) == v1::FAILURE_CLASS_OUT_OF_MEMORY);
  CHECK(ClassifyExit({-1, SIGSEGV}, false) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit({-1, SIGBUS}, false) == v1::FAILURE_CLASS_HARDWARE_TRANSIENT);
  CHECK(ClassifyExit({-1, SIGTERM}, true) == v1::FAILURE_CLASS_CANCELLED);
}

}  // namespace
}  // namespace scalelab::worker
