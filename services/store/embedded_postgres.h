// A PostgreSQL server owned by this process, for the single-machine demo and for tests.
//
// EmbeddedPostgres drives the stock server binaries (initdb, pg_ctl, postgres) on a private
// cluster in a folder of your choosing. The server listens only on a Unix socket and trusts
// every local connection, so anyone who can reach the socket is a superuser: the socket folder
// is created with mode 0700, and socket_dir should not point at a shared folder like /tmp.
//
// PostgreSQL refuses to run as root. When this process runs as root, the server binaries run as
// the OS user "postgres" (which must exist), and data_dir and socket_dir are chowned to it; every
// folder above them must then be traversable by that user (mode o+x), which Start() checks.
// When data_dir is not (a clone in root's home, mode 0700), the cluster is kept in a folder of
// its own under relocation_root instead, the same one on every start (see relocation_root).
//
// Typical use:
//   EmbeddedPostgresOptions options;
//   options.data_dir = ".scalelab/pg";
//   absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start(options);
//   if (!pg.ok()) return pg.status();
//   pqxx::connection conn((*pg)->ConnectionUrl());

#ifndef SCALELAB_SERVICES_STORE_EMBEDDED_POSTGRES_H_
#define SCALELAB_SERVICES_STORE_EMBEDDED_POSTGRES_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace scalelab::services {

struct EmbeddedPostgresOptions {
  // Folder of the cluster; required. Holds pgdata/ (created by initdb on first use and reused
  // after) and postgres.log (the server log). Relative paths are taken from the current folder.
  std::string data_dir;

  // Folder of the Unix socket. "" = <data_dir>/socket. The full socket path
  // <socket_dir>/.s.PGSQL.<port> must fit in 107 bytes (a kernel limit).
  std::string socket_dir;

  // Only names the socket file .s.PGSQL.<port>; the server opens no TCP port. Default 5432.
  int port = 5432;

  // Database created after start when missing; ConnectionUrl() names it by default.
  std::string database = "scalelab";

  // Folder holding initdb and pg_ctl. "" = $SCALELAB_PG_BINDIR when set, else the highest
  // /usr/lib/postgresql/<N>/bin, else the first folder on $PATH that has both.
  std::string bin_dir;

  // true (default): the server fsyncs, so a machine crash loses no committed data.
  // false: initdb --no-sync and fsync, synchronous_commit and full_page_writes off. Several
  // times faster for tests; an OS crash can corrupt the cluster.
  bool durable = true;

  // How long pg_ctl waits for the server to start or stop. Default 60.
  int timeout_s = 60;

  // Only used when this process runs as root and the "postgres" user cannot reach data_dir.
  // Then the cluster (pgdata/, postgres.log and, when socket_dir is "", socket/) lives in
  // RelocatedDataDir(relocation_root, data_dir) instead, a folder created mode 0700 and owned by
  // "postgres", reused by every later start from the same data_dir; Start() logs it and writes
  // its path into <data_dir>/CLUSTER_LOCATION. "" = never relocate: Start() fails with
  // FailedPrecondition naming the folder "postgres" cannot enter. Default "/var/tmp" (kept
  // across reboots, unlike /tmp on many systems).
  std::string relocation_root = "/var/tmp";

  // OK, or InvalidArgument naming the field, the value and what was expected.
  absl::Status Validate() const;
};

// The folder a cluster for `data_dir` is moved to when the "postgres" user cannot reach it:
// <relocation_root>/scalelab-pg-<our uid>-<16 hex digits of a hash of data_dir's absolute path>.
// Deterministic, so the next start from the same clone finds the same cluster.
std::string RelocatedDataDir(std::string_view relocation_root, std::string_view data_dir);

// Not thread-safe: one owner calls Start, ConnectionUrl and Stop. Two EmbeddedPostgres on one
// data_dir at once are only supported as "owner + reuser" (see Start).
class EmbeddedPostgres {
 public:
  // Starts the server (initdb first when data_dir has no cluster) and creates
  // options.database when missing. If a server is already running on data_dir, it is reused as
  // is — with the port and socket folder it was started with — and left running by Stop() and
  // the destructor (owned() == false).
  // Errors: InvalidArgument (options), NotFound (no server binaries), FailedPrecondition (data
  // folder unusable, e.g. not reachable by the "postgres" user), Internal (initdb or pg_ctl
  // failed; the message carries the tail of their output and of the server log),
  // Unavailable (the server started but refused a connection).
  static absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> Start(
      const EmbeddedPostgresOptions& options);

  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  // Stops the server (as Stop()) if this object started it and it still runs; logs failures.
  ~EmbeddedPostgres();

  // Stops the server with pg_ctl stop -m fast (open sessions are rolled back and disconnected)
  // and waits until it has exited. Idempotent; a no-op returning OK when owned() is false.
  absl::Status Stop();

  // A libpq URI for `database` ("" = options.database) as user postgres over the socket, e.g.
  // "postgresql:///scalelab?host=%2Ftmp%2Fx%2Fsocket&port=5432&user=postgres". Usable by
  // pqxx::connection and psql.
  std::string ConnectionUrl(std::string_view database = "") const;

  // True when this object started the server and Stop() / the destructor will stop it.
  bool owned() const { return owned_; }
  // True when Start() ran initdb, i.e. data_dir held no cluster before.
  bool initialized_cluster() const { return initialized_cluster_; }
  // Absolute path of the folder holding the cluster: options.data_dir, or the folder it was
  // relocated to (relocated() == true).
  const std::string& data_dir() const { return data_dir_; }
  bool relocated() const { return relocated_; }
  // Absolute paths of the cluster (<data_dir()>/pgdata) and the socket folder in use.
  const std::string& pgdata() const { return pgdata_; }
  const std::string& socket_dir() const { return socket_dir_; }
  int port() const { return port_; }

 private:
  EmbeddedPostgres() = default;

  // The steps of Start(), in order. Relocate moves data_dir_ to RelocatedDataDir (see
  // EmbeddedPostgresOptions::relocation_root) for a server user that cannot reach it.
  absl::Status Relocate(const std::string& relocation_root);
  absl::Status InitClusterIfMissing(bool durable);
  absl::Status StartOrReuseServer(bool durable);
  absl::Status CreateDatabaseIfMissing();

  std::string bin_dir_;
  std::string data_dir_;
  std::string pgdata_;
  std::string socket_dir_;
  int port_ = 0;
  std::string database_;
  int timeout_s_ = 60;
  // When >= 0, initdb and pg_ctl run with this uid/gid (we are root; they run as "postgres").
  int child_uid_ = -1;
  int child_gid_ = -1;
  bool owned_ = false;
  bool running_ = false;
  bool initialized_cluster_ = false;
  bool relocated_ = false;
};

}  // namespace scalelab::services

#endif  // SCALELAB_SERVICES_STORE_EMBEDDED_POSTGRES_H_
