// Applies the SQL migrations embedded from migrations/*.sql to a PostgreSQL database.
//
// Every daemon calls ApplyMigrations at start-up, so several may call it at once against the
// same database: a transaction-scoped advisory lock serializes them, and each migration is
// applied at most once. Each migration runs in its own transaction together with the row that
// records it in
//
//   schema_migrations(version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ)
//
// so a failed migration leaves neither partial schema nor a record behind (PostgreSQL DDL is
// transactional). A migration therefore cannot use statements that refuse to run inside a
// transaction block (CREATE INDEX CONCURRENTLY, CREATE DATABASE, VACUUM).
//
// Errors:
//   Unavailable         the server cannot be reached or the connection broke; retry later.
//   Internal            a migration's SQL failed; the message names the file and carries the
//                       PostgreSQL message and SQLSTATE. Nothing of that migration is kept.
//   FailedPrecondition  the database records a version this binary does not know, i.e. it was
//                       migrated by a newer ScaleLab; upgrade this binary.
//
// Thread safety: the functions are thread-safe, but a pqxx::connection must not be shared by
// two threads at once; give each caller its own connection.
//
// Internal to scalelab_store because the signature names pqxx::connection: only the store and
// the PostgreSQL test harness, which links libpqxx itself, include it.

#ifndef SCALELAB_SERVICES_STORE_INTERNAL_MIGRATIONS_H_
#define SCALELAB_SERVICES_STORE_INTERNAL_MIGRATIONS_H_

#include <pqxx/connection>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "migrations/embedded.h"

namespace scalelab::services {

// Applies every embedded migration (migrations::All()) not yet recorded in schema_migrations,
// in version order, and returns how many it applied (0 when the schema is current). Creates
// schema_migrations when missing. `conn` must have no transaction open; none is left open.
absl::StatusOr<int> ApplyMigrations(pqxx::connection& conn);

// Same, opening (and closing) its own connection to `connection_url` (a libpq URI or key=value
// connection string).
absl::StatusOr<int> ApplyMigrations(const std::string& connection_url);

// Same, with an explicit list instead of the embedded one; for tests of the runner itself.
// `migrations` must be sorted by version with unique versions.
absl::StatusOr<int> ApplyMigrations(pqxx::connection& conn,
                                    const std::vector<migrations::Migration>& migrations);

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_INTERNAL_MIGRATIONS_H_
