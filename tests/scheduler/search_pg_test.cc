// Search sweeps over a real PostgreSQL: the drafts and their tree rows stored at submission, the
// search loop's steps as runs finish (indexes continuing, parents and operators recorded), the
// step counter that keeps a restarted or second scheduler from making a step twice, configs that
// fail validation recorded and never stored, and the sweep ending once the budget is spent.
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "scheduler/leasing.h"
#include "scheduler/retry_policy.h"
#include "scheduler/scheduler_metrics.h"
#include "scheduler/search_loop.h"
#include "scheduler/store_placement_state.h"
#include "scheduler/sweep_service.h"
#include "services/common/clock.h"
#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::scheduler {
namespace {

constexpr absl::Duration kTtl = absl::Seconds(10);

// Budget 5, two in flight, two drafts. The objective is made up by the test: val_loss = lr * 1000.
constexpr char kSearch[] = R"(name: lr-search
project: search
kind: pretrain
base:
  model: {d_model: 32, n_layers: 2, n_heads: 4, seq_len: 64}
  data: {sources: {tiny: data/tiny}}
  train: {tokens: 1e5, batch_tokens: 1024, lr: 3e-3}
sweep:
  search:
    policy: greedy
    space:
      train.lr: {low: 1e-4, high: 1e-2, log: true}
      model.d_model: [32, 34, 64]
    operators: [perturb, crossover]
    budget: 5
    parallel: 2
    initial: 2
    seed: 3
)";

struct Cluster {
  std::string url = scalelab::testing::FreshDatabaseUrl();
  std::unique_ptr<services::Store> store;
  std::unique_ptr<StorePlacementState> state;
  prometheus::Registry registry;
  SchedulerMetrics metrics{registry};
  services::FakeClock clock;
  int64_t worker_id = 0;

  Cluster() {
    services::StoreOptions options;
    options.url = url;
    auto opened = services::Store::Open(options);
    REQUIRE(opened.ok());
    store = *std::move(opened);
    state = std::make_unique<StorePlacementState>(store.get());
    v1::RegisterRequest request;
    request.set_name("cpu");
    request.set_hostname("test");
    request.set_cpu_slots(16);
    auto id = store->RegisterWorker(request);
    REQUIRE(id.ok());
    worker_id = *id;
  }

  int64_t Submit(const std::string& manifest) {
    ServiceContext context;
    context.store = store.get();
    context.clock = &clock;
    context.metrics = &metrics;
    SweepServiceImpl service(context);
    v1::SubmitSweepRequest request;
    request.set_manifest_yaml(manifest);
    request.set_manifest_name("search.yaml");
    v1::SubmitSweepResponse response;
    grpc::Status status = service.SubmitSweep(nullptr, &request, &response);
    REQUIRE(status.ok());
    return response.sweep().id();
  }

  // Leases every pending run and finishes each with val_loss = lr * 1000.
  int FinishPending() {
    auto leases = GrantLeases(*state, *store, worker_id, 16, clock.Now(), kTtl, {});
    REQUIRE(leases.ok());
    for (const v1::Lease& lease : *leases) {
      const v1::RunSpec& spec = lease.spec();
      v1::ReportMetricsRequest report;
      report.set_worker_id(worker_id);
      report.set_run_id(spec.run_id());
      report.set_attempt(spec.attempt());
      v1::MetricPoint* point = report.add_points();
      point->set_step(10);
      point->set_name("val_loss");
      point->set_value(spec.config().train().lr() * 1000);
      REQUIRE(store->ReportMetrics(report, clock.Now(), kTtl).ok());
      v1::CompleteRunRequest done;
      done.set_worker_id(worker_id);
      done.set_run_id(spec.run_id());
      done.set_attempt(spec.attempt());
      done.set_succeeded(true);
      REQUIRE(store->CompleteRun(done, RetryDeciderWith()).ok());
    }
    return static_cast<int>(leases->size());
  }

  v1::GetSearchTreeResponse Tree(int64_t sweep_id) {
    auto tree = ReadSearchTree(store.get(), sweep_id);
    REQUIRE(tree.ok());
    return *tree;
  }
};

TEST_CASE("A search sweep stores its drafts, then grows as runs finish until its budget",
          "[pg][scheduler][search]") {
  Cluster cluster;
  const int64_t sweep_id = cluster.Submit(kSearch);
  v1::GetSearchTreeResponse tree = cluster.Tree(sweep_id);
  REQUIRE(tree.nodes_size() == 2);
  for (const v1::SearchNode& node : tree.nodes()) {
    CHECK(node.operator_() == "draft");
    CHECK(node.generation() == 0);
    CHECK(node.parent_run_ids().empty());
    CHECK(node.point().at("model.d_model") != "34");  // 34 heads-indivisible: redrawn
  }
  CHECK(tree.open());
  CHECK(tree.best_run_id() == 0);

  SearchLoop loop(cluster.store.get(), SearchLoopOptions{});
  auto pass = loop.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->runs_created == 0);  // both drafts in flight: parallel is full

  REQUIRE(cluster.FinishPending() == 2);
  // Every run ended, but the search is open: the sweep is still running.
  auto sweep = cluster.store->GetSweep(sweep_id);
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_RUNNING);

  pass = loop.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->runs_created + pass->configs_skipped >= 2);
  tree = cluster.Tree(sweep_id);
  CHECK(tree.generation() == 1);
  const int made = tree.nodes_size() - 2;
  CHECK(made == pass->runs_created);
  for (int node_idx = 2; node_idx < tree.nodes_size(); ++node_idx) {
    const v1::SearchNode& node = tree.nodes(node_idx);
    CHECK(node.index() == node_idx);  // indexes continue after the drafts
    CHECK(node.generation() == 1);
    CHECK(node.operator_() != "draft");
    REQUIRE(!node.parent_run_ids().empty());
    CHECK(node.parent_run_ids(0) == tree.best_run_id());  // greedy expands the best
    CHECK(node.policy_state().find("parent_score") != std::string::npos);
  }

  // A second scheduler (or this one restarted) reading the same state makes nothing new...
  SearchLoop restarted(cluster.store.get(), SearchLoopOptions{});
  pass = restarted.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->runs_created == 0);
  // ...and a step computed from a stale generation is refused, not stored twice.
  auto stale = cluster.store->AddSearchRuns(sweep_id, 0, {}, {}, false);
  CHECK(stale.status().code() == absl::StatusCode::kAborted);

  for (int round = 0; round < 10 && cluster.Tree(sweep_id).open(); ++round) {
    cluster.FinishPending();
    REQUIRE(restarted.RunOnce().ok());
  }
  cluster.FinishPending();
  tree = cluster.Tree(sweep_id);
  CHECK(!tree.open());
  CHECK(tree.nodes_size() == 5);
  std::set<std::map<std::string, std::string>> points;
  for (const v1::SearchNode& node : tree.nodes()) {
    CHECK(node.state() == v1::RUN_STATE_SUCCEEDED);
    CHECK(node.has_objective());
    CHECK(node.point().at("model.d_model") != "34");  // never stored
    CHECK(points.emplace(node.point().begin(), node.point().end()).second);
  }
  double lowest = 1e9;
  for (const v1::SearchNode& node : tree.nodes()) lowest = std::min(lowest, node.objective());
  CHECK(tree.best_objective() == lowest);
  sweep = cluster.store->GetSweep(sweep_id);
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_SUCCEEDED);
  CHECK(sweep->total_runs() == 5);
}

TEST_CASE("Generated configs that fail validation are recorded as skipped and never stored",
          "[pg][scheduler][search]") {
  Cluster cluster;
  // Only d_model 32 is valid with 4 heads besides 64; a perturb of 32 lands on 34 half the time.
  const std::string manifest = absl::StrReplaceAll(
      kSearch, {{"model.d_model: [32, 34, 64]", "model.d_model: [32, 34]"},
                {"train.lr: {low: 1e-4, high: 1e-2, log: true}", "train.lr: [1e-3, 2e-3]"},
                {"operators: [perturb, crossover]", "operators: [perturb]"},
                {"budget: 5", "budget: 3"}});
  const int64_t sweep_id = cluster.Submit(manifest);
  SearchLoop loop(cluster.store.get(), SearchLoopOptions{});
  for (int round = 0; round < 20 && cluster.Tree(sweep_id).open(); ++round) {
    cluster.FinishPending();
    REQUIRE(loop.StepSweep(sweep_id).ok());
  }
  cluster.FinishPending();
  const v1::GetSearchTreeResponse tree = cluster.Tree(sweep_id);
  CHECK(!tree.open());
  CHECK(tree.skipped() > 0);
  // Two valid points exist (d_model 32 with either lr): the search closes with what it found.
  CHECK(tree.nodes_size() == 2);
  for (const v1::SearchNode& node : tree.nodes()) CHECK(node.point().at("model.d_model") == "32");
  pqxx::connection connection(cluster.url);
  pqxx::work txn(connection);
  const pqxx::row row = txn.exec_params1(
      "SELECT count(*), min(reason), min(point->>'model.d_model') FROM search_skipped "
      "WHERE sweep_id = $1",
      sweep_id);
  CHECK(row[0].as<int>() == tree.skipped());
  CHECK(row[1].as<std::string>().find("multiple of model.n_heads") != std::string::npos);
  CHECK(row[2].as<std::string>() == "34");
  auto sweep = cluster.store->GetSweep(sweep_id);
  REQUIRE(sweep.ok());
  CHECK(sweep->state() == v1::SWEEP_STATE_SUCCEEDED);
}

TEST_CASE("Cancelling a search sweep closes its search", "[pg][scheduler][search]") {
  Cluster cluster;
  const int64_t sweep_id = cluster.Submit(kSearch);
  REQUIRE(cluster.store->CancelSweep(sweep_id, "test").ok());
  SearchLoop loop(cluster.store.get(), SearchLoopOptions{});
  auto pass = loop.RunOnce();
  REQUIRE(pass.ok());
  CHECK(pass->searches_closed == 1);
  CHECK(pass->runs_created == 0);
  CHECK(!cluster.Tree(sweep_id).open());
  auto open = cluster.store->ListOpenSearches();
  REQUIRE(open.ok());
  CHECK(open->empty());
}

}  // namespace
}  // namespace scalelab::scheduler
