#include "services/store/embedded_postgres.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <pqxx/pqxx>
#include <string>

namespace scalelab::services {
namespace {

namespace fs = std::filesystem;

// A fresh folder under /tmp, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/scalelab_ep_test_XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
    // mkdtemp makes it 0700; as root the server runs as "postgres", which must get through.
    REQUIRE(::chmod(path_.c_str(), 0755) == 0);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

EmbeddedPostgresOptions TestOptions(const TempDir& dir) {
  EmbeddedPostgresOptions options;
  options.data_dir = dir.path() + "/cluster";
  options.durable = false;
  return options;
}

int QueryInt(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::work tx(conn);
  return tx.exec1(sql)[0].as<int>();
}

TEST_CASE("An embedded cluster starts, answers a query and stops", "[pg][services]") {
  TempDir dir;
  EmbeddedPostgresOptions options = TestOptions(dir);
  options.database = "custom_db";
  auto pg = EmbeddedPostgres::Start(options);
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  CHECK((*pg)->owned());
  CHECK((*pg)->initialized_cluster());
  CHECK(fs::exists((*pg)->socket_dir() + "/.s.PGSQL.5432"));

  const std::string url = (*pg)->ConnectionUrl();
  CHECK(url.find("custom_db") != std::string::npos);
  CHECK(QueryInt(url, "SELECT 40 + 2") == 42);
  {
    pqxx::connection conn(url);
    pqxx::work tx(conn);
    CHECK(tx.exec1("SELECT current_database()")[0].as<std::string>() == "custom_db");
  }

  REQUIRE((*pg)->Stop().ok());
  CHECK_THROWS_AS(pqxx::connection(url), pqxx::broken_connection);
  CHECK((*pg)->Stop().ok());  // idempotent
}

TEST_CASE("A second Start on the same data_dir reuses the cluster and its data survives",
          "[pg][services]") {
  TempDir dir;
  const EmbeddedPostgresOptions options = TestOptions(dir);
  {
    auto pg = EmbeddedPostgres::Start(options);
    INFO(pg.status().ToString());
    REQUIRE(pg.ok());
    REQUIRE((*pg)->initialized_cluster());
    pqxx::connection conn((*pg)->ConnectionUrl());
    pqxx::work tx(conn);
    tx.exec("CREATE TABLE kept (value INT)");
    tx.exec("INSERT INTO kept VALUES (7)");
    tx.commit();
  }  // the destructor stops the server

  auto pg = EmbeddedPostgres::Start(options);
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  CHECK((*pg)->owned());
  CHECK_FALSE((*pg)->initialized_cluster());
  CHECK(QueryInt((*pg)->ConnectionUrl(), "SELECT value FROM kept") == 7);
}

TEST_CASE("Start on a data_dir whose server is running reuses it and leaves it running",
          "[pg][services]") {
  TempDir dir;
  const EmbeddedPostgresOptions options = TestOptions(dir);
  auto owner = EmbeddedPostgres::Start(options);
  INFO(owner.status().ToString());
  REQUIRE(owner.ok());

  EmbeddedPostgresOptions other = options;
  other.database = "second_db";
  {
    auto reuser = EmbeddedPostgres::Start(other);
    INFO(reuser.status().ToString());
    REQUIRE(reuser.ok());
    CHECK_FALSE((*reuser)->owned());
    CHECK_FALSE((*reuser)->initialized_cluster());
    CHECK(QueryInt((*reuser)->ConnectionUrl(), "SELECT 1") == 1);
    CHECK((*reuser)->Stop().ok());  // a no-op for a server it does not own
  }
  CHECK(QueryInt((*owner)->ConnectionUrl("second_db"), "SELECT 2") == 2);
  CHECK((*owner)->Stop().ok());
}

TEST_CASE("Bad embedded Postgres options give errors naming the field", "[pg][services]") {
  EmbeddedPostgresOptions options;
  SECTION("an empty data_dir") {
    absl::Status status = options.Validate();
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(status.message().find("data_dir") != std::string::npos);
    CHECK(EmbeddedPostgres::Start(options).status().code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("a socket path longer than a Unix socket allows") {
    options.data_dir = "/tmp/" + std::string(120, 'x');
    absl::Status status = options.Validate();
    CHECK(status.code() == absl::StatusCode::kInvalidArgument);
    CHECK(status.message().find("socket_dir") != std::string::npos);
    CHECK(status.message().find("107") != std::string::npos);
    CHECK_FALSE(EmbeddedPostgres::Start(options).ok());
    CHECK_FALSE(std::filesystem::exists(options.data_dir));  // rejected before touching disk
  }
  SECTION("a port out of range") {
    options.data_dir = "/tmp/scalelab_unused";
    options.port = 70000;
    CHECK(options.Validate().message().find("port") != std::string::npos);
  }
  SECTION("a path pg_ctl cannot quote") {
    options.data_dir = "/tmp/$HOME";
    CHECK(options.Validate().code() == absl::StatusCode::kInvalidArgument);
  }
  SECTION("as root, a data_dir the postgres user cannot reach") {
    if (::geteuid() != 0) return;  // only root switches to the postgres user
    std::string pattern = "/tmp/scalelab_ep_private_XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);  // mode 0700, owned by root
    options.data_dir = pattern + "/cluster";
    options.durable = false;
    options.relocation_root = "";  // no fallback: the refusal itself
    absl::Status status = EmbeddedPostgres::Start(options).status();
    std::filesystem::remove_all(pattern);
    CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
    CHECK(status.message().find(pattern) != std::string::npos);
    CHECK(status.message().find("traversable") != std::string::npos);
  }
  SECTION("a bin_dir without the server binaries") {
    options.data_dir = "/tmp/scalelab_unused";
    options.bin_dir = "/nonexistent";
    absl::Status status = EmbeddedPostgres::Start(options).status();
    CHECK(status.code() == absl::StatusCode::kNotFound);
    CHECK(status.message().find("bin_dir") != std::string::npos);
  }
}

// What a clone under /root (mode 0700) looks like to the "postgres" user.
class PrivateDir {
 public:
  PrivateDir() {
    std::string pattern = "/tmp/scalelab_ep_private_XXXXXX";
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);  // mode 0700, owned by us (root)
    path_ = pattern;
  }
  ~PrivateDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_CASE(
    "As root, a data_dir the postgres user cannot enter keeps its cluster in a reachable folder, "
    "the same one on the next start",
    "[pg][services]") {
  if (::geteuid() != 0) return;  // only root runs the server as another user
  PrivateDir clone;
  TempDir relocation_root;
  EmbeddedPostgresOptions options;
  options.data_dir = clone.path() + "/.scalelab/postgres";
  options.relocation_root = relocation_root.path();
  options.durable = false;
  const std::string expected = RelocatedDataDir(options.relocation_root, options.data_dir);
  CHECK(expected.rfind(relocation_root.path() + "/scalelab-pg-0-", 0) == 0);

  {
    auto pg = EmbeddedPostgres::Start(options);
    INFO(pg.status().ToString());
    REQUIRE(pg.ok());
    CHECK((*pg)->relocated());
    CHECK((*pg)->data_dir() == expected);
    CHECK((*pg)->pgdata() == expected + "/pgdata");
    CHECK((*pg)->socket_dir() == expected + "/socket");
    CHECK((*pg)->initialized_cluster());
    struct stat st {};
    REQUIRE(::stat(expected.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    CHECK(st.st_uid != 0);  // handed to "postgres"
    CHECK(ReadAll(options.data_dir + "/CLUSTER_LOCATION") == expected + "\n");
    pqxx::connection conn((*pg)->ConnectionUrl());
    pqxx::work tx(conn);
    tx.exec("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)");
    tx.commit();
    REQUIRE((*pg)->Stop().ok());
  }
  auto again = EmbeddedPostgres::Start(options);
  INFO(again.status().ToString());
  REQUIRE(again.ok());
  CHECK((*again)->data_dir() == expected);
  CHECK_FALSE((*again)->initialized_cluster());
  CHECK(QueryInt((*again)->ConnectionUrl(), "SELECT v FROM kept") == 7);
  CHECK((*again)->Stop().ok());
}

TEST_CASE("A relocated cluster folder planted as a symlink is refused", "[pg][services]") {
  if (::geteuid() != 0) return;  // only root runs the server as another user
  PrivateDir clone;
  TempDir relocation_root;
  TempDir elsewhere;
  EmbeddedPostgresOptions options;
  options.data_dir = clone.path() + "/postgres";
  options.relocation_root = relocation_root.path();
  options.durable = false;
  fs::create_directory_symlink(elsewhere.path(),
                               RelocatedDataDir(options.relocation_root, options.data_dir));
  absl::Status status = EmbeddedPostgres::Start(options).status();
  CHECK(status.code() == absl::StatusCode::kFailedPrecondition);
  CHECK(status.message().find("not a folder") != std::string::npos);
  CHECK(fs::is_empty(elsewhere.path()));
}

TEST_CASE("A failing initdb reports its own output", "[pg][services]") {
  TempDir dir;
  EmbeddedPostgresOptions options = TestOptions(dir);
  // A non-empty pgdata without PG_VERSION is not a cluster, and initdb refuses to overwrite it.
  fs::create_directories(options.data_dir + "/pgdata");
  std::ofstream(options.data_dir + "/pgdata/stray.txt") << "not a cluster";
  absl::Status status = EmbeddedPostgres::Start(options).status();
  INFO(status.ToString());
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK(status.message().find("initdb") != std::string::npos);
  CHECK(status.message().find("not empty") != std::string::npos);
}

TEST_CASE("ConnectionUrl percent-encodes the socket folder", "[pg][services]") {
  TempDir dir;
  EmbeddedPostgresOptions options = TestOptions(dir);
  options.socket_dir = dir.path() + "/sock et";
  auto pg = EmbeddedPostgres::Start(options);
  INFO(pg.status().ToString());
  REQUIRE(pg.ok());
  const std::string url = (*pg)->ConnectionUrl();
  CHECK(url.find("sock%20et") != std::string::npos);
  CHECK(QueryInt(url, "SELECT 3") == 3);
}

}  // namespace
}  // namespace scalelab::services
