// The control plane's tables: the leader lease and its fencing check (migration 0010), and the
// LISTEN connection behind ChangeListener.
#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/store/change_listener.h"
#include "services/store/internal/pg_pool.h"
#include "services/store/internal/store_rows.h"
#include "services/store/store.h"
#include "spdlog/spdlog.h"

namespace scalelab::services {

namespace internal {

absl::Status CheckLeaderFence(pqxx::work& txn, int64_t epoch) {
  if (epoch == 0) return absl::OkStatus();
  // FOR SHARE: a standby's takeover (an UPDATE of this row) waits until this transaction ends,
  // so the lease cannot change hands between this check and the commit.
  pqxx::result rows = txn.exec_params(
      "SELECT epoch FROM scheduler_leader WHERE id = 1 AND epoch = $1 AND expires_at > now() "
      "FOR SHARE",
      epoch);
  if (rows.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "leader lease epoch ", epoch, " is no longer live: another scheduler acts now"));
  }
  return absl::OkStatus();
}

}  // namespace internal

absl::StatusOr<int64_t> Store::AcquireLeadership(const std::string& holder, int64_t epoch,
                                                 absl::Duration ttl) {
  if (holder.empty()) return absl::InvalidArgumentError("leader holder: expected a name, got \"\"");
  int64_t held = 0;
  absl::Status status = pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    // Renew when we hold it at `epoch`; take it over (a new epoch) when the lease expired.
    pqxx::result rows = txn.exec_params(
        "INSERT INTO scheduler_leader AS l (id, holder, epoch, expires_at) "
        "VALUES (1, $1, 1, now() + make_interval(secs => $3)) "
        "ON CONFLICT (id) DO UPDATE SET "
        "  epoch = CASE WHEN l.holder = $1 AND l.epoch = $2 THEN l.epoch ELSE l.epoch + 1 END, "
        "  acquired_at = CASE WHEN l.holder = $1 AND l.epoch = $2 THEN l.acquired_at "
        "                ELSE now() END, "
        "  holder = $1, expires_at = EXCLUDED.expires_at "
        "WHERE (l.holder = $1 AND l.epoch = $2) OR l.expires_at <= now() "
        "RETURNING epoch",
        holder, epoch, absl::ToDoubleSeconds(ttl));
    held = rows.empty() ? 0 : rows[0][0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return held;
}

absl::Status Store::ReleaseLeadership(const std::string& holder, int64_t epoch) {
  return pool_->InTransaction([&](pqxx::work& txn) -> absl::Status {
    txn.exec_params(
        "UPDATE scheduler_leader SET expires_at = now() - interval '1 microsecond' "
        "WHERE id = 1 AND holder = $1 AND epoch = $2",
        holder, epoch);
    return absl::OkStatus();
  });
}

// --- ChangeListener ------------------------------------------------------------------------

// Not in the anonymous namespace: ChangeListener::Connection (a class of the header) holds one,
// which in a unity build GCC reports as a subobject of internal linkage.
class ChangeReceiver : public pqxx::notification_receiver {
 public:
  ChangeReceiver(pqxx::connection_base& conn, std::function<void(const std::string&)> on_payload)
      : pqxx::notification_receiver(conn, "scalelab_runs"), on_payload_(std::move(on_payload)) {}
  void operator()(const std::string& payload, int /*backend_pid*/) override {
    on_payload_(payload);
  }

 private:
  std::function<void(const std::string&)> on_payload_;
};

namespace {

RunChange ParsePayload(const std::string& payload) {
  RunChange change;
  size_t space = payload.find(' ');
  if (space == std::string::npos || !absl::SimpleAtoi(payload.substr(0, space), &change.sweep_id)) {
    change.sweep_id = 0;  // unreadable: treat as "anything may have changed"
    return change;
  }
  change.to_state = payload.substr(space + 1);
  return change;
}

}  // namespace

struct ChangeListener::Connection {
  std::unique_ptr<pqxx::connection> conn;
  std::unique_ptr<ChangeReceiver> receiver;
};

ChangeListener::ChangeListener(std::string url, Callback on_change, absl::Duration retry_interval)
    : url_(std::move(url)), on_change_(std::move(on_change)), retry_interval_(retry_interval) {}

absl::StatusOr<std::unique_ptr<ChangeListener>> ChangeListener::Start(
    const std::string& url, Callback on_change, absl::Duration retry_interval) {
  std::unique_ptr<ChangeListener> listener(
      new ChangeListener(url, std::move(on_change), retry_interval));
  auto connection = std::make_unique<Connection>();
  try {
    connection->conn = std::make_unique<pqxx::connection>(url);
    ChangeListener* self = listener.get();
    connection->receiver =
        std::make_unique<ChangeReceiver>(*connection->conn, [self](const std::string& payload) {
          self->received_.fetch_add(1);
          self->on_change_(ParsePayload(payload));
        });
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("LISTEN scalelab_runs: ", e.what()));
  }
  listener->connection_ = std::move(connection);
  listener->thread_ = std::thread([self = listener.get()] { self->Loop(); });
  return listener;
}

void ChangeListener::Loop() {
  bool reconnecting = false;
  while (!stop_.load()) {
    try {
      if (!connection_->conn) {
        connection_->conn = std::make_unique<pqxx::connection>(url_);
        connection_->receiver = std::make_unique<ChangeReceiver>(
            *connection_->conn, [this](const std::string& payload) {
              received_.fetch_add(1);
              on_change_(ParsePayload(payload));
            });
        spdlog::info("change listener reconnected to PostgreSQL");
        reconnecting = false;
        received_.fetch_add(1);
        on_change_(RunChange{});  // what happened while disconnected is unknown
      }
      // Short waits, so that destruction is prompt.
      connection_->conn->await_notification(0, 200000);
    } catch (const std::exception& e) {
      if (!reconnecting) spdlog::warn("change listener lost PostgreSQL: {}", e.what());
      reconnecting = true;
      connection_->receiver.reset();
      connection_->conn.reset();
      auto deadline =
          std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(retry_interval_);
      while (!stop_.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
}

ChangeListener::~ChangeListener() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (connection_) {
    try {
      connection_->receiver.reset();  // UNLISTENs on a live connection
    } catch (const std::exception&) {
    }
    connection_->conn.reset();
  }
}

}  // namespace scalelab::services
