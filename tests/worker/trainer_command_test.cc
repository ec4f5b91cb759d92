#include "worker/trainer_command.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/message_differencer.h"
#include "runspec/exit_codes.h"
#include "runspec/run_config.h"
#include "runspec/spec_file.h"

namespace scalelab::worker {
namespace {

v1::RunSpec LeasedSpec() {
  v1::RunSpec spec;
  spec.set_run_id(7);
  spec.set_sweep_id(3);
  spec.set_attempt(2);
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  v1::RunConfig& config = *spec.mutable_config();
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
  return spec;
}

TEST_CASE("A leased spec is completed for this node and the trainer gets only its path",
          "[worker][unit]") {
  auto spec = CompleteRunSpec({"/bin/scalelab-train", "/data", 2}, LeasedSpec(), "/w/run-7-2",
                              "/w/run-7-checkpoints");
  REQUIRE(spec.ok());
  CHECK(spec->config().data().sources().at("web") == "/data/data/web");
  CHECK(spec->config().data().sources().at("abs") == "/abs/path");
  CHECK(spec->output_dir() == "/w/run-7-2");
  CHECK(spec->checkpoint_dir() == "/w/run-7-checkpoints");
  CHECK(spec->execution().threads() == 2);
  CHECK(spec->execution().device() == "cpu");
  CHECK(spec->execution().worker_prunes_checkpoints());
  CHECK(spec->config().train().schedule() == "cosine");  // runspec's defaults, not the worker's

  CHECK(BuildTrainerArgv({"/bin/scalelab-train", "/data", 2}, "/w/run-7-2/spec.json") ==
        std::vector<std::string>{"/bin/scalelab-train", "--spec=/w/run-7-2/spec.json"});
  using Env = std::vector<std::pair<std::string, std::string>>;
  CHECK(TrainerEnvironment(*spec) == Env{{"CUDA_DEVICE_ORDER", "PCI_BUS_ID"},
                                         {"CUDA_VISIBLE_DEVICES", ""},
                                         {"OMP_WAIT_POLICY", "PASSIVE"}});
}

TEST_CASE("A run placed on GPUs sees only those GPUs and trains on cuda", "[worker][unit]") {
  v1::RunSpec leased = LeasedSpec();
  leased.mutable_config()->mutable_resources()->set_gpus(2);
  leased.mutable_execution()->add_gpu_indices(3);
  leased.mutable_execution()->add_gpu_indices(5);
  auto spec = CompleteRunSpec({"t", "/data", 1}, leased, "/w/a", "/w/c");
  REQUIRE(spec.ok());
  CHECK(spec->execution().device() == "cuda");
  CHECK(TrainerEnvironment(*spec)[1].second == "3,5");
}

TEST_CASE("A data-parallel rank keeps its rank and rendezvous and sees only its own GPU",
          "[worker][unit]") {
  // One lease per rank of a gang (the scheduler fills the ExecutionSpec): rank 1 of 2 on this
  // node's GPU 6. The trainer trains on cuda:0, which CUDA_VISIBLE_DEVICES makes GPU 6.
  v1::RunSpec leased = LeasedSpec();
  leased.mutable_config()->mutable_resources()->set_gpus(1);
  leased.mutable_config()->mutable_resources()->set_ranks(2);
  v1::ExecutionSpec& execution = *leased.mutable_execution();
  execution.add_gpu_indices(6);
  execution.set_rank(1);
  execution.set_world_size(2);
  execution.set_local_rank(1);
  execution.set_rendezvous("10.1.2.3:29511");
  execution.set_backend("nccl");
  auto spec = CompleteRunSpec({"t", "/data", 1}, leased, "/w/a", "/w/c");
  REQUIRE(spec.ok());
  CHECK(spec->execution().rank() == 1);
  CHECK(spec->execution().world_size() == 2);
  CHECK(spec->execution().local_rank() == 1);
  CHECK(spec->execution().rendezvous() == "10.1.2.3:29511");
  CHECK(spec->execution().backend() == "nccl");
  CHECK(spec->execution().device() == "cuda");
  CHECK(TrainerEnvironment(*spec)[1] ==
        std::pair<std::string, std::string>{"CUDA_VISIBLE_DEVICES", "6"});

  // A gang whose global batch does not split over its ranks never starts.
  leased.mutable_config()->mutable_train()->set_batch_tokens(64 * 3);
  auto refused = CompleteRunSpec({"t", "/data", 1}, leased, "/w/a", "/w/c");
  REQUIRE(absl::IsInvalidArgument(refused.status()));
  CHECK(refused.status().message().find("train.batch_tokens") != absl::string_view::npos);
}

TEST_CASE("A spec the trainer would refuse is refused before the trainer starts",
          "[worker][unit]") {
  v1::RunSpec no_data = LeasedSpec();
  no_data.mutable_config()->mutable_data()->clear_sources();
  no_data.mutable_config()->mutable_data()->clear_mixture();
  auto spec = CompleteRunSpec({"t", "", 1}, no_data, "/w/a", "/w/c");
  REQUIRE(absl::IsInvalidArgument(spec.status()));
  CHECK(spec.status().message() ==
        "run 7 attempt 2: data.sources: expected at least one source, got none");
}

// A kind SFT lease whose task set, periodic evaluation set and suite are files under the data
// root, as a manifest would name them.
v1::RunSpec LeasedSftSpec() {
  v1::RunSpec spec = LeasedSpec();
  spec.set_kind(v1::RUN_KIND_SFT);
  v1::RunConfig& config = *spec.mutable_config();
  config.mutable_data()->clear_sources();
  config.mutable_data()->clear_mixture();
  config.mutable_train()->clear_tokens();
  config.mutable_train()->clear_batch_tokens();
  config.mutable_sft()->mutable_tasks()->set_path("tasks/train.jsonl");
  config.mutable_eval()->mutable_tasks()->mutable_tasks()->set_path("tasks/test.jsonl");
  config.mutable_eval()->mutable_tasks()->set_suite("/abs/suite.yaml");
  return spec;
}

TEST_CASE("Task files of a lease are resolved against the data root like data sources",
          "[worker][unit]") {
  v1::RunSpec leased = LeasedSftSpec();
  leased.mutable_config()->mutable_grpo()->mutable_tasks()->set_path("rl.jsonl");
  auto spec = CompleteRunSpec({"t", "/data", 1}, leased, "/w/a", "/w/c");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  CHECK(spec->config().sft().tasks().path() == "/data/tasks/train.jsonl");
  CHECK(spec->config().grpo().tasks().path() == "/data/rl.jsonl");
  CHECK(spec->config().eval().tasks().tasks().path() == "/data/tasks/test.jsonl");
  CHECK(spec->config().eval().tasks().suite() == "/abs/suite.yaml");  // already absolute

  // A generator names no file: nothing to resolve, and no path appears.
  v1::RunSpec generated = LeasedSftSpec();
  generated.mutable_config()->mutable_sft()->mutable_tasks()->clear_path();
  generated.mutable_config()->mutable_sft()->mutable_tasks()->set_generator("addition");
  generated.mutable_config()->mutable_eval()->clear_tasks();
  auto completed = CompleteRunSpec({"t", "/data", 1}, generated, "/w/a", "/w/c");
  REQUIRE(completed.ok());
  CHECK(completed->config().sft().tasks().path().empty());
  CHECK(completed->config().eval().tasks().suite().empty());
}

TEST_CASE("The trainer's spec must name task files by absolute path", "[worker][unit]") {
  v1::RunSpec spec = LeasedSftSpec();
  spec.mutable_execution()->set_device("cpu");
  spec.mutable_execution()->set_threads(1);
  runspec::ApplySpecDefaults(&spec);
  const absl::Status relative = runspec::ValidateRunSpec(spec);
  REQUIRE(absl::IsInvalidArgument(relative));
  CHECK(relative.message() ==
        "config.sft.tasks.path: expected an absolute file (the worker resolves relative ones), "
        "got \"tasks/train.jsonl\"");
  runspec::ResolveDataFolders("/data", &spec);
  CHECK(runspec::ValidateRunSpec(spec).ok());
  spec.mutable_config()->mutable_eval()->mutable_tasks()->set_suite("suite.yaml");
  CHECK_THAT(std::string(runspec::ValidateRunSpec(spec).message()),
             Catch::StartsWith("config.eval.tasks.suite: expected an absolute file"));
}

// Sets every field of `message`, recursing into sub-messages, to a value that is not its default.
void SetEveryField(google::protobuf::Message* message) {
  const google::protobuf::Descriptor& descriptor = *message->GetDescriptor();
  const google::protobuf::Reflection& reflection = *message->GetReflection();
  for (int field_idx = 0; field_idx < descriptor.field_count(); ++field_idx) {
    const google::protobuf::FieldDescriptor& field = *descriptor.field(field_idx);
    switch (field.cpp_type()) {
      case google::protobuf::FieldDescriptor::CPPTYPE_INT32:
        reflection.SetInt32(message, &field, 1000 + field_idx);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_INT64:
        reflection.SetInt64(message, &field, 1000 + field_idx);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_DOUBLE:
        reflection.SetDouble(message, &field, 0.5 + field_idx);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_STRING:
        reflection.SetString(message, &field, "value-" + field.name());
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_BOOL:
        reflection.SetBool(message, &field, true);
        break;
      case google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE:
        SetEveryField(reflection.MutableMessage(message, &field));
        break;
      default:
        FAIL(descriptor.name() << "." << field.name() << ": extend this test to its type");
    }
  }
}

// The proof that a new model option needs no worker code: every ModelSpec field, nested
// sections included, set by reflection to a value that is not its default, reaches the trainer's
// spec file unchanged. A field added to the proto tomorrow is covered without touching this test
// or worker/.
TEST_CASE("Every ModelSpec field travels from the lease to the trainer's spec file untouched",
          "[worker][unit]") {
  v1::RunSpec leased = LeasedSpec();
  v1::ModelSpec& model = *leased.mutable_config()->mutable_model();
  SetEveryField(&model);
  CHECK(model.ssm().d_state() != 0);
  // Validation is the trainer's business here: the values are arbitrary on purpose.
  v1::RunSpec written = leased;
  runspec::ResolveDataFolders("/data", &written);
  const std::string dir =
      std::filesystem::temp_directory_path() / ("scalelab-spec-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  REQUIRE(runspec::WriteRunSpecFile(dir + "/spec.json", written).ok());
  auto read = runspec::ReadRunSpecFile(dir + "/spec.json");
  std::filesystem::remove_all(dir);
  REQUIRE(read.ok());
  CHECK(google::protobuf::util::MessageDifferencer::Equals(read->config().model(), model));
}

TEST_CASE("Trainer output lines parse into metric points and artifacts", "[worker][unit]") {
  auto line = ParseTrainerLine(
      R"({"step":12,"tokens":49152,"name":"train_loss","value":3.25,"wall_time_s":1.5})");
  REQUIRE(line.ok());
  REQUIRE(line->metric.has_value());
  CHECK_FALSE(line->artifact.has_value());
  CHECK(line->metric->step() == 12);
  CHECK(line->metric->tokens() == 49152);
  CHECK(line->metric->name() == "train_loss");
  CHECK(line->metric->value() == 3.25);
  CHECK(line->metric->wall_time_s() == 1.5);
  CHECK(ParseTrainerLine(R"({"step":1,"name":"x","value":1,"future_field":true})").ok());
  CHECK(absl::IsInvalidArgument(ParseTrainerLine("loading data...").status()));
  CHECK(absl::IsInvalidArgument(ParseTrainerLine(R"({"step":1,"value":2})").status()));

  auto artifact = ParseTrainerLine(R"({"artifact":"final","path":"/w/final.pt","step":120})");
  REQUIRE(artifact.ok());
  REQUIRE(artifact->artifact.has_value());
  CHECK(artifact->artifact->kind() == "final");
  CHECK(artifact->artifact->location() == "/w/final.pt");
  CHECK(artifact->artifact->step() == 120);
  CHECK(absl::IsInvalidArgument(ParseTrainerLine(R"({"artifact":"final"})").status()));
  CHECK(absl::IsInvalidArgument(
      ParseTrainerLine(R"({"artifact":"weights","path":"/w/x.pt","step":1})").status()));
  CHECK(absl::IsInvalidArgument(
      ParseTrainerLine(R"({"artifact":"final","path":"/w/x.pt","step":1e300})").status()));
}

TEST_CASE("A run record line parses into the RunRecord the scheduler gets", "[worker][unit]") {
  auto line = ParseTrainerLine(
      R"({"record":"run","family":"transformer","n_params":85248,"n_params_total":101632,)"
      R"("flops_per_token":523776,"tokens":20480,"flops":10726932480})");
  REQUIRE(line.ok());
  REQUIRE(line->record.has_value());
  CHECK_FALSE(line->metric.has_value());
  CHECK_FALSE(line->artifact.has_value());
  CHECK(line->record->family() == "transformer");
  CHECK(line->record->n_params() == 85248);
  CHECK(line->record->n_params_total() == 101632);
  CHECK(line->record->flops_per_token() == 523776);
  CHECK(line->record->tokens() == 20480);
  CHECK(line->record->flops() == 10726932480.0);
  // Counts beyond 2^31 and FLOPs printed with an exponent survive.
  auto big =
      ParseTrainerLine(R"({"record":"run","n_params":123456789012,"flops":1.5e+24,"later":[1]})");
  REQUIRE(big.ok());
  REQUIRE(big->record.has_value());
  CHECK(big->record->n_params() == 123456789012);
  CHECK(big->record->flops() == 1.5e24);
  CHECK(big->record->tokens() == 0);

  for (const char* bad :
       {R"({"record":"run","n_params":-1})", R"({"record":"run","n_params":1.5})",
        R"({"record":"run","n_params":"12"})", R"({"record":"run","tokens":null})",
        R"({"record":"run","flops":-2})", R"({"record":"fit","n_params":1})"}) {
    INFO(bad);
    CHECK(absl::IsInvalidArgument(ParseTrainerLine(bad).status()));
  }
  auto refused = ParseTrainerLine(R"({"record":"run","n_params_total":"many"})");
  CHECK_THAT(std::string(refused.status().message()),
             Catch::Contains("n_params_total") && Catch::Contains("\"many\""));

  // A metric that happens to be called "record" or "artifact" is still a metric.
  for (const char* name : {"record", "artifact"}) {
    auto metric = ParseTrainerLine(absl::StrCat(R"({"step":1,"name":")", name, R"(","value":2})"));
    REQUIRE(metric.ok());
    REQUIRE(metric->metric.has_value());
    CHECK(metric->metric->name() == name);
  }
}

TEST_CASE("An artifact file is described by its size and SHA-256", "[worker][unit]") {
  const std::string path =
      std::filesystem::temp_directory_path() / ("scalelab-artifact-" + std::to_string(::getpid()));
  std::ofstream(path) << "abc";
  v1::Artifact artifact;
  artifact.set_location(path);
  REQUIRE(DescribeArtifactFile(&artifact).ok());
  std::filesystem::remove(path);
  CHECK(artifact.size_bytes() == 3);
  CHECK(artifact.sha256() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(absl::IsNotFound(DescribeArtifactFile(&artifact)));
}

TEST_CASE("The trainer's failure record is parsed; an unknown class is refused", "[worker][unit]") {
  auto parsed = ParseTrainerLine(
      R"({"record":"failure","class":"OUT_OF_MEMORY","message":"CUDA out of memory"})");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->failure.has_value());
  CHECK(parsed->failure->failure_class == v1::FAILURE_CLASS_OUT_OF_MEMORY);
  CHECK(parsed->failure->message == "CUDA out of memory");
  CHECK_FALSE(parsed->record.has_value());
  auto roundtrip = ParseTrainerLine(
      runspec::FormatFailureRecord(absl::InternalError("NCCL error: remote process exited")));
  REQUIRE(roundtrip.ok());
  REQUIRE(roundtrip->failure.has_value());
  CHECK(roundtrip->failure->failure_class == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  auto bad = ParseTrainerLine(R"({"record":"failure","class":"GREMLINS"})");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("GREMLINS") != std::string::npos);
}

TEST_CASE("Exit statuses are classified for the retry policy", "[worker][unit]") {
  CHECK(ClassifyExit({0, 0}, false) == v1::FAILURE_CLASS_UNSPECIFIED);
  CHECK(ClassifyExit({2, 0}, false) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit({4, 0}, false) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit({runspec::kExitOutOfMemory, 0}, false) == v1::FAILURE_CLASS_OUT_OF_MEMORY);
  CHECK(ClassifyExit({127, 0}, false) == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  // Without evidence of the kernel's OOM killer (worker/health.h), a SIGKILL is not an OOM.
  CHECK(ClassifyExit({-1, SIGKILL}, false) == v1::FAILURE_CLASS_SYSTEM_SOFTWARE);
  CHECK(ClassifyExit({-1, SIGSEGV}, false) == v1::FAILURE_CLASS_USER);
  CHECK(ClassifyExit({-1, SIGBUS}, false) == v1::FAILURE_CLASS_HARDWARE_TRANSIENT);
  CHECK(ClassifyExit({-1, SIGTERM}, true) == v1::FAILURE_CLASS_CANCELLED);
}

TEST_CASE("A child process gets the extra environment it is given", "[worker][unit]") {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("scalelab-env-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ::setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3", 1);
  auto child = ChildProcess::Spawn({{"/bin/sh", "-c", "echo \"[$CUDA_VISIBLE_DEVICES]\" >&2"},
                                    dir + "/stderr.log",
                                    "",
                                    {{"CUDA_VISIBLE_DEVICES", "2"}}});
  ::unsetenv("CUDA_VISIBLE_DEVICES");
  REQUIRE(child.ok());
  CHECK((*child)->Wait().exit_code == 0);
  CHECK(TailOfFile(dir + "/stderr.log", 1).find("[2]") != std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace scalelab::worker
