#include "tests/support/pg_harness.h"

#include <libpq-fe.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/store/embedded_postgres.h"
#include "services/store/internal/migrations.h"

namespace scalelab::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kTempPrefix[] = "scalelab_pg_";

[[noreturn]] void Fail(absl::string_view what) {
  throw std::runtime_error(absl::StrCat("pg_harness: ", what));
}

// Quotes a value for a libpq key=value connection string.
std::string QuoteConninfoValue(absl::string_view value) {
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += "'";
  return quoted;
}

// Rewrites `conninfo` (URI or key=value) to name `database` instead, keeping everything else.
std::string WithDatabase(const std::string& conninfo, const std::string& database) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    std::string reason = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    Fail(absl::StrCat("SCALELAB_TEST_DATABASE_URL is not a valid connection string: ", reason));
  }
  std::string rewritten;
  for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
    if (option->val == nullptr || std::string_view(option->keyword) == "dbname") continue;
    absl::StrAppend(&rewritten, option->keyword, "=", QuoteConninfoValue(option->val), " ");
  }
  PQconninfoFree(options);
  absl::StrAppend(&rewritten, "dbname=", QuoteConninfoValue(database));
  return rewritten;
}

// A zombie counts as dead: its parent may never reap it (e.g. when pid 1 is not an init).
bool ProcessAlive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  size_t after_name = stat.rfind(')');  // "pid (comm) state ...": comm may hold spaces
  return after_name == std::string::npos || after_name + 2 >= stat.size() ||
         stat[after_name + 2] != 'Z';
}

// Stops the server and removes the folder of every /tmp/scalelab_pg_<pid>_* whose test process
// is gone. The server's pid is only signalled after /proc confirms it is a postgres running on
// that very folder, so a recycled pid is never hit.
void ReapAbandonedClusters() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/tmp", ec)) {
    std::string name = entry.path().filename().string();
    if (!absl::StartsWith(name, kTempPrefix)) continue;
    absl::string_view rest = absl::string_view(name).substr(sizeof(kTempPrefix) - 1);
    int owner_pid = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find('_')), &owner_pid) || owner_pid <= 0 ||
        owner_pid == ::getpid() || ProcessAlive(owner_pid)) {
      continue;
    }
    const std::string pgdata = entry.path().string() + "/pgdata";
    std::ifstream pid_file(pgdata + "/postmaster.pid");
    int server_pid = 0;
    if (pid_file >> server_pid && server_pid > 0) {
      std::ifstream cmdline_file(absl::StrCat("/proc/", server_pid, "/cmdline"));
      std::string cmdline((std::istreambuf_iterator<char>(cmdline_file)),
                          std::istreambuf_iterator<char>());
      if (absl::StrContains(cmdline, "postgres") && absl::StrContains(cmdline, pgdata)) {
        ::kill(server_pid, SIGQUIT);  // immediate shutdown; the data is thrown away anyway
        for (int i = 0; i < 100 && ProcessAlive(server_pid); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      }
    }
    fs::remove_all(entry.path(), ec);
  }
}

class TestServer {
 public:
  // Starts the embedded cluster or adopts SCALELAB_TEST_DATABASE_URL; throws on failure.
  TestServer() {
    if (const char* url = std::getenv("SCALELAB_TEST_DATABASE_URL"); url != nullptr && *url) {
      external_url_ = url;
      return;
    }
    ReapAbandonedClusters();
    std::string pattern = absl::StrCat("/tmp/", kTempPrefix, ::getpid(), "_XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) {
      Fail(absl::StrCat("mkdtemp ", pattern, ": ", std::strerror(errno)));
    }
    temp_dir_ = pattern;
    services::EmbeddedPostgresOptions options;
    options.data_dir = temp_dir_;
    options.database = "postgres";  // exists already; each test gets its own database
    options.durable = false;
    absl::StatusOr<std::unique_ptr<services::EmbeddedPostgres>> pg =
        services::EmbeddedPostgres::Start(options);
    if (!pg.ok()) {
      std::error_code ec;
      fs::remove_all(temp_dir_, ec);
      Fail(absl::StrCat("starting the test PostgreSQL failed: ", pg.status().ToString()));
    }
    pg_ = *std::move(pg);
  }

  // Runs at exit, from an atexit handler.
  void Shutdown() {
    if (pg_ != nullptr) {
      if (absl::Status status = pg_->Stop(); !status.ok()) {
        std::fprintf(stderr, "pg_harness: %s\n", status.ToString().c_str());
      }
      pg_.reset();
      std::error_code ec;
      fs::remove_all(temp_dir_, ec);
      return;
    }
    // An external server outlives us: drop what we created there. Plain libpq, because
    // libpqxx's own statics may already be destroyed this late in exit.
    if (created_.empty()) return;
    PGconn* conn = PQconnectdb(external_url_.c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
      std::fprintf(stderr, "pg_harness: dropping test databases: %s", PQerrorMessage(conn));
    } else {
      for (const std::string& database : created_) {
        char* quoted = PQescapeIdentifier(conn, database.c_str(), database.size());
        std::string sql = absl::StrCat("DROP DATABASE IF EXISTS ", quoted, " WITH (FORCE)");
        PQfreemem(quoted);
        PGresult* result = PQexec(conn, sql.c_str());
        if (PQresultStatus(result) != PGRES_COMMAND_OK) {
          std::fprintf(stderr, "pg_harness: %s: %s", sql.c_str(), PQerrorMessage(conn));
        }
        PQclear(result);
      }
    }
    PQfinish(conn);
  }

  std::string CreateDatabase() {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string admin_url = pg_ != nullptr ? pg_->ConnectionUrl("postgres") : external_url_;
    try {
      pqxx::connection conn(admin_url);
      pqxx::nontransaction tx(conn);
      // A database left by an earlier process with our pid (external server) makes a name taken;
      // move on to the next one.
      for (int attempt = 0; attempt < 100; ++attempt) {
        std::string name = absl::StrCat("t_", ::getpid(), "_", next_index_++);
        try {
          tx.exec(absl::StrCat("CREATE DATABASE ", tx.quote_name(name)));
        } catch (const pqxx::sql_error& e) {
          if (e.sqlstate() == "42P04") continue;  // duplicate_database
          throw;
        }
        created_.push_back(name);
        return pg_ != nullptr ? pg_->ConnectionUrl(name) : WithDatabase(external_url_, name);
      }
    } catch (const std::exception& e) {
      Fail(absl::StrCat("CREATE DATABASE on ", admin_url, " failed: ", e.what()));
    }
    Fail("no free database name after 100 attempts");
  }

 private:
  std::mutex mu_;
  std::string external_url_;
  std::string temp_dir_;
  std::unique_ptr<services::EmbeddedPostgres> pg_;
  int next_index_ = 0;
  std::vector<std::string> created_;  // GUARDED_BY(mu_)
};

std::mutex server_mu;
TestServer* server = nullptr;  // GUARDED_BY(server_mu); leaked on purpose, see GetServer

void ShutdownAtExit() {
  std::lock_guard<std::mutex> lock(server_mu);
  if (server != nullptr) server->Shutdown();
}

TestServer& GetServer() {
  std::lock_guard<std::mutex> lock(server_mu);
  if (server == nullptr) {
    // A failed start throws out of here and is retried by the next test, which then reports
    // the same reason; that keeps every affected test red with a message.
    server = new TestServer();
    // Registered after the start so that it runs before the destructors of statics the start
    // created (spdlog's registry), which run in reverse order of creation.
    std::atexit(&ShutdownAtExit);
  }
  return *server;
}

}  // namespace

std::string FreshEmptyDatabaseUrl() { return GetServer().CreateDatabase(); }

std::string FreshDatabaseUrl() {
  std::string url = FreshEmptyDatabaseUrl();
  absl::StatusOr<int> applied = services::ApplyMigrations(url);
  if (!applied.ok()) {
    Fail(absl::StrCat("applying migrations to ", url, ": ", applied.status().ToString()));
  }
  return url;
}

}  // namespace scalelab::testing
