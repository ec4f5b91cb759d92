// Pipelines over a real PostgreSQL: a manifest with stages submitted through SweepService becomes
// every run of every stage, linked to its parent; children wait for their parent's final weights,
// lease with their own kind, and are cancelled with their whole subtree when the parent fails.
#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/leasing.h"
#include "scheduler/retry_policy.h"
#include "scheduler/scheduler_metrics.h"
#include "scheduler/store_placement_state.h"
#include "scheduler/sweep_service.h"
#include "services/common/clock.h"
#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

constexpr absl::Duration kTtl = absl::Seconds(10);

// Two model sizes pretrained; for each, SFT at two epoch counts; GRPO after each SFT run (at most
// 2 attempts); an evaluation of each GRPO run. 2 + 4 + 4 + 4 = 14 runs.
constexpr char kPipeline[] = R"(name: study
project: posttrain
kind: pretrain
stage: pretrain
base:
  model: {d_model: 32, n_layers: 2, n_heads: 2, seq_len: 64}
  data: {sources: {tiny: data/tiny}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}
sweep: {grid: {model.d_model: [32, 64]}}
stages:
  - name: sft
    kind: sft
    base: {sft: {tasks: {generator: addition, digits: 2}}, train: {lr: 1e-3}}
    sweep: {grid: {sft.epochs: [1, 2]}}
  - name: grpo
    kind: grpo
    after: sft
    base: {grpo: {tasks: {generator: addition, digits: 2}, steps: 20}, train: {lr: 1e-5}}
    max_attempts: 2
  - name: eval
    kind: eval
    after: grpo
    base: {eval: {tasks: {tasks: {generator: addition, digits: 2}, samples: 8, k: [1, 8]}}, train: {lr: 1e-5}}
)";

struct Cluster {
  std::string url = scalelab::testing::FreshDatabaseUrl();
  std::unique_ptr<services::Store> store;
  std::unique_ptr<StorePlacementState> state;
  prometheus::Registry registry;
  SchedulerMetrics metrics{registry};
  services::FakeClock clock;

  Cluster() {
    services::StoreOptions options;
    options.url = url;
    auto opened = services::Store::Open(options);
    REQUIRE(opened.ok());
    store = *std::move(opened);
    state = std::make_unique<StorePlacementState>(store.get());
  }

  grpc::Status Submit(const std::string& manifest, v1::SubmitSweepResponse* response) {
    ServiceContext context;
    context.store = store.get();
    context.clock = &clock;
    context.metrics = &metrics;
    SweepServiceImpl service(context);
    v1::SubmitSweepRequest request;
    request.set_manifest_yaml(manifest);
    request.set_manifest_name("study.yaml");
    return service.SubmitSweep(nullptr, &request, response);
  }

  // The runs of a submitted pipeline, by index.
  std::vector<v1::Run> SubmitPipeline() {
    v1::SubmitSweepResponse response;
    grpc::Status status = Submit(kPipeline, &response);
    REQUIRE(status.ok());
    auto runs = store->ListRuns(response.sweep().id(), v1::RUN_STATE_UNSPECIFIED, 0);
    REQUIRE(runs.ok());
    return *runs;
  }

  int64_t Register() {
    v1::RegisterRequest request;
    request.set_name("cpu");
    request.set_hostname("test");
    request.set_cpu_slots(16);
    auto id = store->RegisterWorker(request);
    REQUIRE(id.ok());
    return *id;
  }

  std::vector<v1::Lease> Lease(int64_t worker_id, int free_slots) {
    auto leases = GrantLeases(*state, *store, worker_id, free_slots, clock.Now(), kTtl, {});
    REQUIRE(leases.ok());
    return *leases;
  }

  // Ends the leased attempt: success with final weights, or a user failure without them.
  void Finish(int64_t worker_id, const v1::Lease& lease, bool succeeded) {
    const v1::RunSpec& spec = lease.spec();
    if (succeeded) {
      v1::ReportArtifactsRequest report;
      report.set_worker_id(worker_id);
      report.set_run_id(spec.run_id());
      report.set_attempt(spec.attempt());
      v1::Artifact* final_weights = report.add_artifacts();
      final_weights->set_kind("final");
      final_weights->set_step(10);
      final_weights->set_location(absl::StrCat("/out/", spec.run_id(), "/final.pt"));
      REQUIRE(store->ReportArtifacts(report).ok());
    }
    v1::CompleteRunRequest done;
    done.set_worker_id(worker_id);
    done.set_run_id(spec.run_id());
    done.set_attempt(spec.attempt());
    done.set_succeeded(succeeded);
    if (!succeeded) {
      done.set_exit_code(3);
      done.set_failure_class(v1::FAILURE_CLASS_USER);
    }
    REQUIRE(store->CompleteRun(done, RetryDeciderWith()).ok());
  }

  // run_transitions rows of a run, as "FROM->TO".
  std::vector<std::string> Transitions(int64_t run_id) {
    pqxx::connection connection(url);
    pqxx::work txn(connection);
    std::vector<std::string> out;
    for (const auto& row : txn.exec_params(
             "SELECT from_state, to_state FROM run_transitions WHERE run_id = $1 ORDER BY id",
             run_id)) {
      out.push_back(absl::StrCat(row[0].as<std::string>(), "->", row[1].as<std::string>()));
    }
    return out;
  }
};

std::vector<int64_t> RunIds(const std::vector<v1::Lease>& leases) {
  std::vector<int64_t> ids;
  for (const v1::Lease& lease : leases) ids.push_back(lease.spec().run_id());
  return ids;
}

TEST_CASE("A pipeline is stored at submission with every child linked to its parent",
          "[pg][scheduler][pipeline]") {
  Cluster cluster;
  std::vector<v1::Run> runs = cluster.SubmitPipeline();
  REQUIRE(runs.size() == 14);
  std::map<std::string, int> per_stage;
  for (const v1::Run& run : runs) ++per_stage[run.stage()];
  CHECK(per_stage ==
        std::map<std::string, int>{{"pretrain", 2}, {"sft", 4}, {"grpo", 4}, {"eval", 4}});
  for (int run_idx : {0, 1}) {
    CHECK(runs[run_idx].kind() == v1::RUN_KIND_PRETRAIN);
    CHECK(runs[run_idx].parent_run_id() == 0);
    CHECK(runs[run_idx].config().init().from_run() == 0);
    CHECK(runs[run_idx].max_attempts() == 3);
  }
  // SFT runs 2-5: two per pretrain run, each starting from it and with its model.
  for (int run_idx = 2; run_idx < 6; ++run_idx) {
    const v1::Run& run = runs[run_idx];
    const v1::Run& parent = runs[run_idx < 4 ? 0 : 1];
    CHECK(run.kind() == v1::RUN_KIND_SFT);
    CHECK(run.stage() == "sft");
    CHECK(run.parent_run_id() == parent.id());
    CHECK(run.config().init().from_run() == parent.id());
    CHECK(run.config().model().d_model() == parent.config().model().d_model());
  }
  CHECK(runs[2].overrides().at("sft.epochs") == "1");
  CHECK(runs[3].overrides().at("sft.epochs") == "2");
  for (int run_idx = 6; run_idx < 10; ++run_idx) {
    CHECK(runs[run_idx].kind() == v1::RUN_KIND_GRPO);
    CHECK(runs[run_idx].parent_run_id() == runs[run_idx - 4].id());
    CHECK(runs[run_idx].config().init().from_run() == runs[run_idx - 4].id());
    CHECK(runs[run_idx].max_attempts() == 2);  // the stage's own
  }
  for (int run_idx = 10; run_idx < 14; ++run_idx) {
    CHECK(runs[run_idx].kind() == v1::RUN_KIND_EVAL);
    CHECK(runs[run_idx].parent_run_id() == runs[run_idx - 4].id());
  }
  // GetRun reads the same columns.
  auto one = cluster.store->GetRun(runs[13].id());
  REQUIRE(one.ok());
  CHECK(one->stage() == "eval");
  CHECK(one->parent_run_id() == runs[9].id());
}

TEST_CASE("Submission refuses a bad stage with its manifest line and stores nothing",
          "[pg][scheduler][pipeline]") {
  Cluster cluster;
  std::string manifest = kPipeline;
  manifest.replace(manifest.find("after: sft"), 10, "after: rl");
  v1::SubmitSweepResponse response;
  grpc::Status status = cluster.Submit(manifest, &response);
  CHECK(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(status.error_message() ==
        "study.yaml:17: stages[1].after: expected the main stage or an earlier stage (one of "
        "pretrain, sft), got \"rl\"");
  auto all = cluster.store->ListRuns(0, v1::RUN_STATE_UNSPECIFIED, 0);
  REQUIRE(all.ok());
  CHECK(all->empty());
}

TEST_CASE("A child leases only after its parent succeeded with final weights, with its own kind",
          "[pg][scheduler][pipeline]") {
  Cluster cluster;
  std::vector<v1::Run> runs = cluster.SubmitPipeline();
  const int64_t worker = cluster.Register();
  std::vector<v1::Lease> leases = cluster.Lease(worker, 16);
  // Only the pretraining runs are ready; every other run waits for weights.
  REQUIRE(RunIds(leases) == std::vector<int64_t>{runs[0].id(), runs[1].id()});
  CHECK(leases[0].spec().kind() == v1::RUN_KIND_PRETRAIN);
  CHECK(cluster.Lease(worker, 14).empty());

  cluster.Finish(worker, leases[0], /*succeeded=*/true);
  std::vector<v1::Lease> sft = cluster.Lease(worker, 15);
  REQUIRE(RunIds(sft) == std::vector<int64_t>{runs[2].id(), runs[3].id()});
  for (const v1::Lease& lease : sft) {
    CHECK(lease.spec().kind() == v1::RUN_KIND_SFT);  // the sweep's kind is pretrain
    CHECK(lease.spec().config().init().from_run() == runs[0].id());
    CHECK(lease.spec().init_artifact().location() ==
          absl::StrCat("/out/", runs[0].id(), "/final.pt"));
  }

  cluster.Finish(worker, sft[1], /*succeeded=*/true);
  std::vector<v1::Lease> grpo = cluster.Lease(worker, 14);
  REQUIRE(RunIds(grpo) == std::vector<int64_t>{runs[7].id()});
  CHECK(grpo[0].spec().kind() == v1::RUN_KIND_GRPO);
  cluster.Finish(worker, grpo[0], /*succeeded=*/true);
  std::vector<v1::Lease> eval = cluster.Lease(worker, 14);
  REQUIRE(RunIds(eval) == std::vector<int64_t>{runs[11].id()});
  CHECK(eval[0].spec().kind() == v1::RUN_KIND_EVAL);
}

TEST_CASE("A parent that failed for good cancels its whole subtree, naming the parent",
          "[pg][scheduler][pipeline]") {
  Cluster cluster;
  std::vector<v1::Run> runs = cluster.SubmitPipeline();
  const int64_t worker = cluster.Register();
  std::vector<v1::Lease> leases = cluster.Lease(worker, 16);
  REQUIRE(leases.size() == 2);
  auto none = cluster.store->FailUnstartableRuns();
  REQUIRE(none.ok());
  CHECK(none->empty());  // the parents still run: their children wait

  cluster.Finish(worker, leases[0], /*succeeded=*/false);  // a user failure: no retry
  auto parent = cluster.store->GetRun(runs[0].id());
  REQUIRE(parent.ok());
  REQUIRE(parent->state() == v1::RUN_STATE_FAILED);

  auto ended = cluster.store->FailUnstartableRuns();
  REQUIRE(ended.ok());
  // Pretrain run 0's subtree: sft 2, 3; grpo 6, 7; eval 10, 11, all in one call.
  std::vector<int64_t> ended_ids;
  for (const services::UnstartableRun& run : *ended) {
    ended_ids.push_back(run.run_id);
    CHECK(run.state == v1::RUN_STATE_CANCELLED);
  }
  std::sort(ended_ids.begin(), ended_ids.end());
  CHECK(ended_ids == std::vector<int64_t>{runs[2].id(), runs[3].id(), runs[6].id(), runs[7].id(),
                                          runs[10].id(), runs[11].id()});
  for (int run_idx : {2, 3, 6, 7, 10, 11}) {
    auto run = cluster.store->GetRun(runs[run_idx].id());
    REQUIRE(run.ok());
    CHECK(run->state() == v1::RUN_STATE_CANCELLED);
    CHECK(run->failure_class() == v1::FAILURE_CLASS_CANCELLED);
    CHECK(cluster.Transitions(run->id()) ==
          std::vector<std::string>{"->PENDING", "PENDING->CANCELLED"});
  }
  auto sft = cluster.store->GetRun(runs[2].id());
  REQUIRE(sft.ok());
  CHECK(sft->message() == absl::StrCat("pipeline parent run ", runs[0].id(),
                                       " (stage pretrain) ended FAILED without final weights"));
  auto eval = cluster.store->GetRun(runs[10].id());
  REQUIRE(eval.ok());
  CHECK(eval->message().rfind(absl::StrCat("pipeline parent run ", runs[6].id(),
                                           " (stage grpo) ended CANCELLED without final weights: "
                                           "pipeline parent run ",
                                           runs[2].id()),
                              0) == 0);
  // The other pretraining run's subtree is untouched, and the sweep still runs.
  for (int run_idx : {4, 5, 8, 9, 12, 13}) {
    CHECK(cluster.store->GetRun(runs[run_idx].id())->state() == v1::RUN_STATE_PENDING);
  }
  auto sweep = cluster.store->GetSweep(runs[0].sweep_id());
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_RUNNING);
  CHECK(sweep->runs_by_state().at("CANCELLED") == 6);
  CHECK(cluster.store->FailUnstartableRuns()->empty());  // nothing left to end

  // When the other branch fails too, everything has ended and the sweep failed.
  cluster.Finish(worker, leases[1], /*succeeded=*/false);
  REQUIRE(cluster.store->FailUnstartableRuns()->size() == 6);
  sweep = cluster.store->GetSweep(runs[0].sweep_id());
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_FAILED);
}

TEST_CASE(
    "A parent that succeeded without final weights cancels its children instead of "
    "holding them forever",
    "[pg][scheduler][pipeline]") {
  Cluster cluster;
  std::vector<v1::Run> runs = cluster.SubmitPipeline();
  const int64_t worker = cluster.Register();
  std::vector<v1::Lease> leases = cluster.Lease(worker, 16);
  REQUIRE(leases.size() == 2);
  // Success without a final artifact (a trainer that wrote none).
  v1::CompleteRunRequest done;
  done.set_worker_id(worker);
  done.set_run_id(runs[1].id());
  done.set_attempt(1);
  done.set_succeeded(true);
  REQUIRE(cluster.store->CompleteRun(done, RetryDeciderWith()).ok());
  auto ended = cluster.store->FailUnstartableRuns();
  REQUIRE(ended.ok());
  CHECK(ended->size() == 6);  // sft 4, 5; grpo 8, 9; eval 12, 13
  auto sft = cluster.store->GetRun(runs[4].id());
  REQUIRE(sft.ok());
  CHECK(sft->state() == v1::RUN_STATE_CANCELLED);
  CHECK(sft->message() == absl::StrCat("pipeline parent run ", runs[1].id(),
                                       " (stage pretrain) ended SUCCEEDED without final weights"));
  CHECK(cluster.store->GetRun(runs[2].id())->state() == v1::RUN_STATE_PENDING);
}

TEST_CASE("A run starting from a finished run outside any pipeline still fails, not cancels",
          "[pg][scheduler][pipeline]") {
  Cluster cluster;
  std::vector<v1::Run> runs = cluster.SubmitPipeline();
  const int64_t worker = cluster.Register();
  std::vector<v1::Lease> leases = cluster.Lease(worker, 16);
  // A separate sweep whose run names pretrain run 1 by init.from_run: no parent link.
  std::string manifest = kPipeline;
  manifest = manifest.substr(0, manifest.find("stages:"));
  manifest.replace(manifest.find("name: study"), 11, "name: other");
  manifest.replace(manifest.find("sweep: {grid: {model.d_model: [32, 64]}}"), 40,
                   absl::StrCat("  init: {from_run: ", runs[1].id(), "}"));
  v1::SubmitSweepResponse response;
  REQUIRE(cluster.Submit(manifest, &response).ok());
  auto other = cluster.store->ListRuns(response.sweep().id(), v1::RUN_STATE_UNSPECIFIED, 0);
  REQUIRE(other.ok());
  REQUIRE(other->size() == 1);
  CHECK((*other)[0].parent_run_id() == 0);

  cluster.Finish(worker, leases[1], /*succeeded=*/false);
  auto ended = cluster.store->FailUnstartableRuns();
  REQUIRE(ended.ok());
  auto run = cluster.store->GetRun((*other)[0].id());
  REQUIRE(run.ok());
  CHECK(run->state() == v1::RUN_STATE_FAILED);
  CHECK(run->failure_class() == v1::FAILURE_CLASS_USER);
  CHECK(ended->size() == 7);  // the pipeline subtree (6 cancelled) and this run (failed)
}

}  // namespace
}  // namespace scalelab::scheduler
