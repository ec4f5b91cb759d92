#include "services/store/internal/pg_pool.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace scalelab::services {

absl::Status PgPoolOptions::Validate() const {
  if (url.empty())
    return absl::InvalidArgumentError("database url: expected a libpq URI, got \"\"");
  if (size < 1)
    return absl::InvalidArgumentError(absl::StrCat("pool size: expected >= 1, got ", size));
  if (max_retries < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_retries: expected >= 0, got ", max_retries));
  }
  return absl::OkStatus();
}

PgPool::PgPool(PgPoolOptions options) : options_(std::move(options)) {}

PgPool::~PgPool() = default;

std::unique_ptr<pqxx::connection> PgPool::Acquire(absl::Status* status) {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](PgPool* pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mu_) {
          return !pool->idle_.empty() || pool->open_ < pool->options_.size;
        },
        this));
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
    ++open_;  // reserve a slot before connecting outside the lock
  }
  try {
    auto conn = std::make_unique<pqxx::connection>(options_.url);
    for (const auto& [name, sql] : options_.prepared) conn->prepare(name, sql);
    return conn;
  } catch (const std::exception& e) {
    absl::MutexLock lock(&mu_);
    --open_;
    *status = absl::UnavailableError(absl::StrCat("connecting to PostgreSQL: ", e.what()));
    return nullptr;
  }
}

void PgPool::Release(std::unique_ptr<pqxx::connection> conn) {
  absl::MutexLock lock(&mu_);
  if (conn && conn->is_open()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

absl::Status PgPool::InTransaction(const std::function<absl::Status(pqxx::work&)>& body) {
  absl::Status last;
  bool reconnected = false;
  for (int attempt = 0; attempt <= options_.max_retries; ++attempt) {
    absl::Status connect_status;
    std::unique_ptr<pqxx::connection> conn = Acquire(&connect_status);
    if (!conn) return connect_status;
    bool retry = false;
    try {
      absl::Status status;
      {
        pqxx::work txn(*conn);
        status = body(txn);
        if (status.ok()) txn.commit();
      }  // an uncommitted transaction rolls back here, before the connection is shared again
      Release(std::move(conn));
      return status;
    } catch (const pqxx::broken_connection& e) {
      // Nothing was committed (a break during COMMIT is in_doubt_error, below). After a server
      // restart every idle connection is dead too: drop them all and try once more on a new
      // one, so one restart costs callers one reconnect rather than one error per connection.
      conn.reset();
      DropIdle();
      last = absl::UnavailableError(absl::StrCat("PostgreSQL connection lost: ", e.what()));
      if (!reconnected) {
        reconnected = true;
        --attempt;  // a reconnect is not a serialization retry
        retry = true;
      }
    } catch (const pqxx::serialization_failure& e) {
      retry = true;
      last = absl::AbortedError(absl::StrCat("serialization failure: ", e.what()));
    } catch (const pqxx::deadlock_detected& e) {
      retry = true;
      last = absl::AbortedError(absl::StrCat("deadlock: ", e.what()));
    } catch (const pqxx::unique_violation& e) {
      last = absl::AlreadyExistsError(e.what());
    } catch (const pqxx::sql_error& e) {
      last = absl::InternalError(absl::StrCat("SQL error: ", e.what(), " in: ", e.query()));
    } catch (const pqxx::in_doubt_error& e) {
      conn.reset();
      last = absl::UnavailableError(absl::StrCat("commit in doubt: ", e.what()));
    } catch (const std::exception& e) {
      last = absl::InternalError(absl::StrCat("store: ", e.what()));
    }
    Release(std::move(conn));
    if (!retry) break;
    spdlog::debug("retrying transaction after: {}", last.ToString());
  }
  return last;
}

void PgPool::DropIdle() {
  absl::MutexLock lock(&mu_);
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
}

absl::Status PgPool::Ping() {
  return InTransaction([](pqxx::work& txn) {
    txn.exec("SELECT 1");
    return absl::OkStatus();
  });
}

}  // namespace scalelab::services
