#include "services/store/internal/migrations.h"

#include <exception>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace scalelab::services {
namespace {

// Key of the advisory lock that serializes migration runners on one database. Any constant
// works as long as nothing else in ScaleLab takes the same key ("5CA1E" + "0001": ScaleLab's
// first advisory lock). Other ScaleLab locks must pick a different key.
constexpr long long kMigrationLockKey = 0x5CA1E0001;

constexpr char kCreateTableSql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "  version    INT PRIMARY KEY,"
    "  name       TEXT NOT NULL,"
    "  applied_at TIMESTAMPTZ NOT NULL DEFAULT now())";

// Takes the lock for the rest of `tx` and makes sure the bookkeeping table exists. Creating the
// table under the lock matters: two sessions racing on CREATE TABLE IF NOT EXISTS can still
// fail with a unique violation in pg_type.
void LockAndBootstrap(pqxx::work& tx) {
  tx.exec(absl::StrCat("SELECT pg_advisory_xact_lock(", kMigrationLockKey, ")"));
  tx.exec(kCreateTableSql);
}

std::set<int> AppliedVersions(pqxx::work& tx) {
  std::set<int> versions;
  for (const auto& row : tx.exec("SELECT version FROM schema_migrations")) {
    versions.insert(row[0].as<int>());
  }
  return versions;
}

absl::Status StatusFromException(absl::string_view context) {
  try {
    throw;
  } catch (const pqxx::broken_connection& e) {
    return absl::UnavailableError(absl::StrCat(context, ": connection lost: ", e.what()));
  } catch (const pqxx::sql_error& e) {
    return absl::InternalError(
        absl::StrCat(context, ": ", e.what(), " (SQLSTATE ", e.sqlstate(), ")"));
  } catch (const pqxx::in_doubt_error& e) {
    // The commit may or may not have happened; re-running is safe because every migration
    // checks its record under the lock first.
    return absl::UnavailableError(absl::StrCat(context, ": commit outcome unknown: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(context, ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<int> ApplyMigrations(pqxx::connection& conn,
                                    const std::vector<migrations::Migration>& migrations) {
  std::set<int> applied;
  try {
    pqxx::work tx(conn, "migrations_bootstrap");
    LockAndBootstrap(tx);
    applied = AppliedVersions(tx);
    tx.commit();
  } catch (...) {
    return StatusFromException("schema_migrations bootstrap");
  }

  int known_max = migrations.empty() ? 0 : migrations.back().version;
  if (!applied.empty() && *applied.rbegin() > known_max) {
    return absl::FailedPreconditionError(
        absl::StrCat("database schema is at version ", *applied.rbegin(),
                     " but this binary only knows migrations up to ", known_max,
                     "; it was migrated by a newer ScaleLab"));
  }

  int applied_now = 0;
  for (const migrations::Migration& migration : migrations) {
    if (applied.count(migration.version) > 0) continue;
    const std::string context = absl::StrCat("migration ", std::string(migration.name));
    try {
      pqxx::work tx(conn, "migration");
      LockAndBootstrap(tx);
      // Another runner may have applied it between our bootstrap read and taking the lock.
      pqxx::result recorded =
          tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", migration.version);
      if (!recorded.empty()) {
        tx.commit();
        continue;
      }
      tx.exec(std::string(migration.sql));
      tx.exec_params("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                     migration.version, std::string(migration.name));
      tx.commit();
    } catch (...) {
      return StatusFromException(context);
    }
    spdlog::info("applied {}", context);
    ++applied_now;
  }
  return applied_now;
}

absl::StatusOr<int> ApplyMigrations(pqxx::connection& conn) {
  return ApplyMigrations(conn, migrations::All());
}

absl::StatusOr<int> ApplyMigrations(const std::string& connection_url) {
  std::unique_ptr<pqxx::connection> conn;
  try {
    conn = std::make_unique<pqxx::connection>(connection_url);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot connect to apply migrations: ", e.what()));
  }
  return ApplyMigrations(*conn);
}

}  // namespace scalelab::services
