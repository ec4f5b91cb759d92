// The SQL migrations of this folder, compiled into the binary (see CMakeLists.txt here).
//
// Migrations are forward-only: a released file is never edited; a schema change is a new file
// with the next version. services/store/internal/migrations.h applies them.

#ifndef SCALELAB_MIGRATIONS_EMBEDDED_H_
#define SCALELAB_MIGRATIONS_EMBEDDED_H_

#include <string_view>
#include <vector>

namespace scalelab::migrations {

struct Migration {
  int version;            // the NNNN prefix of the file name, >= 1
  std::string_view name;  // the file name, e.g. "0001_initial.sql"
  std::string_view sql;   // the file's contents, verbatim; may hold several statements
};

// Every migrations/*.sql file, sorted by version, versions unique (checked at build time).
// The views point at static storage and stay valid for the life of the process.
// Thread-safe.
const std::vector<Migration>& All();

}  // namespace scalelab::migrations

#endif  // SCALELAB_MIGRATIONS_EMBEDDED_H_
