#include "services/store/internal/migrations.h"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "migrations/embedded.h"
#include "tests/support/pg_harness.h"

namespace scalelab::services {
namespace {

int CountRows(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::work tx(conn);
  return tx.exec1(sql)[0].as<int>();
}

bool TableExists(const std::string& url, const std::string& table) {
  pqxx::connection conn(url);
  pqxx::work tx(conn);
  return tx.exec_params1("SELECT to_regclass($1) IS NOT NULL", "public." + table)[0].as<bool>();
}

TEST_CASE("Embedded migrations are numbered from 1, sorted and named after their file",
          "[services]") {
  const std::vector<migrations::Migration>& all = migrations::All();
  REQUIRE_FALSE(all.empty());
  CHECK(all.front().version == 1);
  CHECK(all.front().name == "0001_initial.sql");
  for (size_t migration_idx = 0; migration_idx < all.size(); ++migration_idx) {
    const migrations::Migration& migration = all[migration_idx];
    CHECK(std::stoi(std::string(migration.name.substr(0, 4))) == migration.version);
    CHECK_FALSE(migration.sql.empty());
    if (migration_idx > 0) CHECK(all[migration_idx - 1].version < migration.version);
  }
}

TEST_CASE("Migrations apply once and record one row per file", "[pg][services]") {
  const std::string url = testing::FreshEmptyDatabaseUrl();
  const int file_count = static_cast<int>(migrations::All().size());

  absl::StatusOr<int> first = ApplyMigrations(url);
  INFO(first.status().ToString());
  REQUIRE(first.ok());
  CHECK(*first == file_count);
  absl::StatusOr<int> second = ApplyMigrations(url);
  INFO(second.status().ToString());
  REQUIRE(second.ok());
  CHECK(*second == 0);

  CHECK(CountRows(url, "SELECT count(*) FROM schema_migrations") == file_count);
  CHECK(CountRows(url,
                  "SELECT count(*) FROM schema_migrations WHERE version = 1 AND "
                  "name = '0001_initial.sql' AND applied_at IS NOT NULL") == 1);
  for (const char* table : {"projects", "sweeps", "workers", "runs", "run_attempts",
                            "run_transitions", "metric_points"}) {
    INFO("table " << table);
    CHECK(TableExists(url, table));
  }
}

TEST_CASE("Two concurrent ApplyMigrations calls both succeed and record each migration once",
          "[pg][services]") {
  const std::string url = testing::FreshEmptyDatabaseUrl();
  pqxx::connection conn_a(url);
  pqxx::connection conn_b(url);
  absl::StatusOr<int> result_a = 0;
  absl::StatusOr<int> result_b = 0;
  std::thread thread_a([&] { result_a = ApplyMigrations(conn_a); });
  std::thread thread_b([&] { result_b = ApplyMigrations(conn_b); });
  thread_a.join();
  thread_b.join();

  INFO(result_a.status().ToString());

  REQUIRE(result_a.ok());
  INFO(result_b.status().ToString());
  REQUIRE(result_b.ok());
  const int file_count = static_cast<int>(migrations::All().size());
  CHECK(*result_a + *result_b == file_count);
  CHECK(CountRows(url, "SELECT count(*) FROM schema_migrations") == file_count);
}

TEST_CASE("A failing migration names its file, carries the Postgres error and leaves nothing",
          "[pg][services]") {
  const std::string url = testing::FreshEmptyDatabaseUrl();
  const std::vector<migrations::Migration> bad = {
      {1, "0001_good.sql", "CREATE TABLE good (id INT);"},
      {2, "0002_broken.sql", "CREATE TABLE half (id INT); CREATE TABLEE oops (id INT);"},
  };
  pqxx::connection conn(url);
  absl::StatusOr<int> result = ApplyMigrations(conn, bad);
  REQUIRE_FALSE(result.ok());
  const std::string message(result.status().message());
  CHECK(message.find("0002_broken.sql") != std::string::npos);
  CHECK(message.find("syntax error") != std::string::npos);
  CHECK(message.find("42601") != std::string::npos);  // SQLSTATE syntax_error

  CHECK(TableExists(url, "good"));
  CHECK_FALSE(TableExists(url, "half"));  // rolled back with its migration
  CHECK(CountRows(url, "SELECT count(*) FROM schema_migrations") == 1);
}

TEST_CASE("Migrations refuse a database migrated by a newer binary", "[pg][services]") {
  const std::string url = testing::FreshDatabaseUrl();
  {
    pqxx::connection conn(url);
    pqxx::work tx(conn);
    tx.exec("INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')");
    tx.commit();
  }
  absl::StatusOr<int> result = ApplyMigrations(url);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(result.status().message().find("9999") != std::string::npos);
}

TEST_CASE("The harness hands out fresh databases with and without the schema", "[pg][services]") {
  const std::string migrated = testing::FreshDatabaseUrl();
  const std::string empty = testing::FreshEmptyDatabaseUrl();
  CHECK(migrated != empty);
  CHECK(TableExists(migrated, "runs"));
  CHECK_FALSE(TableExists(empty, "runs"));
  CHECK_FALSE(TableExists(empty, "schema_migrations"));
}

TEST_CASE("An unreachable server gives Unavailable", "[pg][services]") {
  absl::StatusOr<int> result =
      ApplyMigrations(std::string("postgresql:///x?host=/nonexistent_scalelab&port=1"));
  CHECK(result.status().code() == absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace scalelab::services
