// The run contract's rules for data-parallel execution (execution.rank, world_size, rendezvous,
// backend) and the global batch they split.

#include <catch2/catch.hpp>
#include <string>

#include "runspec/exit_codes.h"
#include "runspec/run_config.h"
#include "runspec/spec_file.h"

namespace scalelab::runspec {
namespace {

// seq_len 32, batch_tokens 1024: 32 windows per step.
v1::RunSpec TwoRankSpec() {
  auto spec = ParseRunSpec(R"(
kind: RUN_KIND_PRETRAIN
config:
  model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 32}
  data: {sources: {text: /data/text}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}
execution: {rank: 1, world_size: 2, rendezvous: "10.0.0.5:29500"}
)",
                           "spec.yaml");
  REQUIRE(spec.ok());
  ApplySpecDefaults(&*spec);
  return *spec;
}

std::string Refusal(const v1::RunSpec& spec) {
  absl::Status status = ValidateRunSpec(spec);
  REQUIRE(absl::IsInvalidArgument(status));
  return std::string(status.message());
}

TEST_CASE("A two-rank pretraining spec validates", "[runspec][unit]") {
  CHECK(ValidateRunSpec(TwoRankSpec()).ok());
}

TEST_CASE("A global batch that does not split into whole windows per rank is refused",
          "[runspec][unit]") {
  v1::RunSpec spec = TwoRankSpec();
  spec.mutable_config()->mutable_train()->set_batch_tokens(32 * 3);  // 3 windows for 2 ranks
  CHECK(Refusal(spec) ==
        "train.batch_tokens: expected a multiple of model.seq_len x execution.world_size "
        "(32 x 2 = 64: the global batch splits into whole windows per rank), got 96");

  spec = TwoRankSpec();
  spec.mutable_config()->mutable_train()->set_micro_batch_tokens(1024);  // > a rank's 512
  CHECK(Refusal(spec) ==
        "train.micro_batch_tokens: expected a divisor of each rank's share of "
        "train.batch_tokens (1024 / 2 = 512), got 1024");
}

TEST_CASE("Data-parallel fields out of range are refused, naming the field", "[runspec][unit]") {
  v1::RunSpec spec = TwoRankSpec();
  spec.mutable_execution()->set_rank(2);
  CHECK(Refusal(spec) == "execution.rank: expected 0..1 (execution.world_size 2), got 2");

  spec = TwoRankSpec();
  spec.mutable_execution()->set_rendezvous("10.0.0.5");
  CHECK(Refusal(spec).find("execution.rendezvous: expected \"host:port\"") == 0);

  spec = TwoRankSpec();
  spec.mutable_execution()->set_backend("mpi");
  CHECK(Refusal(spec).find("execution.backend: expected \"gloo\", \"nccl\" or \"\"") == 0);

  spec = TwoRankSpec();
  spec.mutable_execution()->set_backend("nccl");  // on the CPU
  CHECK(Refusal(spec).find("execution.backend: expected \"gloo\" or \"\" for execution.device") ==
        0);
}

TEST_CASE("Kinds other than pretraining refuse more than one rank", "[runspec][unit]") {
  auto spec = ParseRunSpec(R"(
kind: RUN_KIND_SFT
config:
  model: {d_model: 64, n_layers: 2, n_heads: 4, seq_len: 32}
  train: {lr: 3e-3}
  sft: {tasks: {generator: addition, digits: 2}}
execution: {world_size: 2, rendezvous: "127.0.0.1:29500"}
)",
                           "spec.yaml");
  REQUIRE(spec.ok());
  ApplySpecDefaults(&*spec);
  CHECK(std::string(ValidateRunSpec(*spec).message()) ==
        "execution.world_size: expected 1 for a run of kind RUN_KIND_SFT (data parallelism "
        "covers pretraining only for now), got 2");
  spec->mutable_execution()->set_world_size(1);
  CHECK(ValidateRunSpec(*spec).ok());
}

TEST_CASE("A lost peer is its own exit code, not the rank's fault", "[runspec][unit]") {
  CHECK(ExitCodeForStatus(absl::UnavailableError("peer")) == kExitPeerLost);
  TrainerExit exit;
  exit.exit_code = kExitPeerLost;
  CHECK(ClassifyExit(exit) == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
}

}  // namespace
}  // namespace scalelab::runspec
