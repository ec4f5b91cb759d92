// Store::ListRunsPage against a real PostgreSQL: every run exactly once, in (sweep, index)
// order, with the total, across pages and across sweeps.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "services/store/store.h"
#include "tests/support/pg_harness.h"

namespace scalelab::services {
namespace {

std::unique_ptr<Store> OpenStore() {
  StoreOptions options;
  options.url = scalelab::testing::FreshDatabaseUrl();
  auto store = Store::Open(options);
  REQUIRE(store.ok());
  return *std::move(store);
}

int64_t CreateSweepOf(Store& store, const std::string& name, int n_runs) {
  v1::SweepSpec spec;
  spec.set_name(name);
  spec.set_project("tests");
  spec.set_kind(v1::RUN_KIND_PRETRAIN);
  spec.set_max_attempts(1);
  std::vector<NewRun> runs(n_runs);
  for (int i = 0; i < n_runs; ++i) {
    runs[i].index = i;
    runs[i].config.mutable_train()->set_tokens(1000);
  }
  auto created = store.CreateSweep(spec, "", "", runs);
  REQUIRE(created.ok());
  return created->sweep.id();
}

TEST_CASE("ListRunsPage walks a 2,500-run sweep in pages, each run once and in index order",
          "[pg][services]") {
  auto store = OpenStore();
  const int64_t sweep = CreateSweepOf(*store, "big", 2500);

  std::vector<int> indices;
  std::string token;
  int pages = 0;
  do {
    auto page = store->ListRunsPage(sweep, v1::RUN_STATE_UNSPECIFIED, 0, token);
    REQUIRE(page.ok());
    CHECK(page->total_count == 2500);
    CHECK(page->runs.size() <= static_cast<size_t>(kMaxRunPageSize));
    for (const v1::Run& run : page->runs) indices.push_back(run.index());
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  CHECK(pages == 3);  // 1000 + 1000 + 500
  REQUIRE(indices.size() == 2500);
  for (int i = 0; i < 2500; ++i) REQUIRE(indices[i] == i);

  SECTION("ListRuns keeps answering the first page only") {
    auto first = store->ListRuns(sweep, v1::RUN_STATE_UNSPECIFIED, 0);
    REQUIRE(first.ok());
    CHECK(first->size() == 1000);
  }
}

TEST_CASE("ListRunsPage pages across sweeps and filters by state, with the matching total",
          "[pg][services]") {
  auto store = OpenStore();
  const int64_t first = CreateSweepOf(*store, "a", 3);
  const int64_t second = CreateSweepOf(*store, "b", 4);
  REQUIRE(store->CancelSweep(first, "test").ok());  // its 3 runs become CANCELLED

  std::vector<std::pair<int64_t, int>> keys;
  std::string token;
  int pages = 0;
  do {
    auto page = store->ListRunsPage(0, v1::RUN_STATE_UNSPECIFIED, 2, token);
    REQUIRE(page.ok());
    CHECK(page->total_count == 7);
    for (const v1::Run& run : page->runs) keys.push_back({run.sweep_id(), run.index()});
    token = page->next_page_token;
    ++pages;
  } while (!token.empty() && pages < 10);
  CHECK(pages == 4);
  const std::vector<std::pair<int64_t, int>> expected = {
      {first, 0}, {first, 1}, {first, 2}, {second, 0}, {second, 1}, {second, 2}, {second, 3}};
  CHECK(keys == expected);

  auto pending = store->ListRunsPage(0, v1::RUN_STATE_PENDING, 3, "");
  REQUIRE(pending.ok());
  CHECK(pending->total_count == 4);
  CHECK(pending->runs.size() == 3);
  CHECK_FALSE(pending->next_page_token.empty());

  auto exact = store->ListRunsPage(second, v1::RUN_STATE_UNSPECIFIED, 4, "");
  REQUIRE(exact.ok());
  CHECK(exact->runs.size() == 4);
  CHECK(exact->next_page_token.empty());  // a full last page says nothing more follows
}

TEST_CASE("ListRunsPage refuses a page token no answer gave, and an unknown sweep",
          "[pg][services]") {
  auto store = OpenStore();
  auto bad = store->ListRunsPage(0, v1::RUN_STATE_UNSPECIFIED, 10, "not-a-token");
  CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(bad.status().message().find("page_token") != std::string::npos);
  auto missing = store->ListRunsPage(424242, v1::RUN_STATE_UNSPECIFIED, 10, "");
  CHECK(missing.status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace scalelab::services
