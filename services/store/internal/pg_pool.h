// A fixed-size pool of libpqxx connections, and the one place where libpqxx exceptions become
// absl::Status. Everything above the store sees Status only.
#ifndef SCALELAB_SERVICES_STORE_INTERNAL_PG_POOL_H_
#define SCALELAB_SERVICES_STORE_INTERNAL_PG_POOL_H_

#include <functional>
#include <memory>
#include <pqxx/pqxx>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace scalelab::services {

struct PgPoolOptions {
  std::string url;      // libpq connection URI; required
  int size = 4;         // connections opened lazily, at most this many at once
  int max_retries = 3;  // serialization failures / deadlocks retried this many times
  // Statements prepared on every new connection: name -> SQL.
  std::vector<std::pair<std::string, std::string>> prepared;
  absl::Status Validate() const;
};

// Thread-safe. Connections are opened on demand and dropped when they break, so a restarted
// PostgreSQL is picked up again on the next call.
class PgPool {
 public:
  explicit PgPool(PgPoolOptions options);
  ~PgPool();

  // Runs `body` in one transaction (READ COMMITTED) and commits it. Exceptions from libpqxx are
  // translated: broken_connection -> Unavailable; serialization_failure and deadlock -> retried,
  // then Aborted; unique violations -> AlreadyExists; other SQL errors -> Internal with the
  // server's message. A non-OK Status returned by `body` aborts the transaction and is returned.
  absl::Status InTransaction(const std::function<absl::Status(pqxx::work&)>& body);

  // Checks that a connection can be made now.
  absl::Status Ping();

 private:
  std::unique_ptr<pqxx::connection> Acquire(absl::Status* status);
  void Release(std::unique_ptr<pqxx::connection> conn);
  // Closes every idle connection (after one was found broken: the server restarted).
  void DropIdle();

  const PgPoolOptions options_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_INTERNAL_PG_POOL_H_
