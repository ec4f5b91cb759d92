// PostgreSQL for tests: a private server per test process and a fresh database per test.
//
// The first call starts a PostgreSQL cluster (EmbeddedPostgres, durable = false) in a new
// folder /tmp/scalelab_pg_<pid>_XXXXXX; at process exit the server is stopped and the folder
// removed. Folders left by test processes that died without cleaning up (a crash, a ctest
// timeout) are reaped by the next process that starts a cluster.
//
// If the environment variable SCALELAB_TEST_DATABASE_URL is set (a libpq URI or key=value
// string), that server is used instead; its role must be allowed to CREATE DATABASE. The
// databases created there are dropped at process exit.
//
// Failures (no server binaries, initdb error, ...) throw std::runtime_error carrying the reason,
// so the calling test fails loudly rather than being skipped.
//
// Thread-safe.

#ifndef SCALELAB_TESTS_SUPPORT_PG_HARNESS_H_
#define SCALELAB_TESTS_SUPPORT_PG_HARNESS_H_

#include <string>

namespace scalelab::testing {

// Returns a connection string (usable by pqxx::connection) for a new, uniquely named database
// (t_<pid>_<n>) holding the schema of every embedded migration.
std::string FreshDatabaseUrl();

// Same, for an empty database: no migrations applied, no schema_migrations table.
std::string FreshEmptyDatabaseUrl();

}  // namespace scalelab::testing

#endif  // SCALELAB_TESTS_SUPPORT_PG_HARNESS_H_
