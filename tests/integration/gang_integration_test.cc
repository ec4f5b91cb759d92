// Gangs end to end (issue 9 items 1 and 2): a run of two data-parallel ranks is placed on two
// workers with one CPU slot each, each worker runs the real scalelab-train as its rank (Gloo over
// the rendezvous the scheduler handed out), and rank 0 alone reports. Killing one rank's trainer
// ends the other rank and the gang is retried as a new placement.
#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/integration/stack.h"

namespace scalelab::testing {
namespace {

// A gang of two CPU ranks; the global batch (1024 tokens) splits into 512 per rank.
std::string GangManifest(const Stack& stack, const std::string& name, double tokens) {
  return stack.Manifest(name, tokens, "{resources.ranks: [2]}");
}

bool Ended(const std::vector<v1::Run>& runs) {
  return !runs.empty() && std::all_of(runs.begin(), runs.end(), [](const v1::Run& run) {
    return run.state() == v1::RUN_STATE_SUCCEEDED || run.state() == v1::RUN_STATE_FAILED ||
           run.state() == v1::RUN_STATE_CANCELLED;
  });
}

template <typename Predicate>
bool WaitUntil(Predicate done, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// "attempt:rank:worker:state" of every run_ranks row of the run, in that order.
std::vector<std::string> RankRows(const Stack& stack, int64_t run_id) {
  pqxx::connection conn(stack.database_url());
  pqxx::work txn(conn);
  std::vector<std::string> rows;
  for (const auto& row :
       txn.exec_params("SELECT attempt, rank, worker_id, state FROM run_ranks WHERE run_id = $1 "
                       "ORDER BY attempt, rank",
                       run_id)) {
    rows.push_back(absl::StrCat(row[0].as<int>(), ":", row[1].as<int>(), ":", row[2].as<int64_t>(),
                                ":", row[3].as<std::string>()));
  }
  return rows;
}

// The steps of the stored points named `name` of the run (every attempt).
std::vector<int64_t> StoredSteps(const Stack& stack, int64_t run_id, const std::string& name) {
  pqxx::connection conn(stack.database_url());
  pqxx::work txn(conn);
  std::vector<int64_t> steps;
  for (const auto& row : txn.exec_params(
           "SELECT step FROM metric_points WHERE run_id = $1 AND name = $2 ORDER BY step", run_id,
           name)) {
    steps.push_back(row[0].as<int64_t>());
  }
  return steps;
}

// The pid of the trainer a worker started for this rank of this attempt, from its log line
// "started run=R attempt=A rank=K/2 ... pid=P"; 0 while there is none.
pid_t TrainerPid(const Stack& stack, int64_t run_id, int attempt, int rank) {
  const std::string started =
      absl::StrCat("started run=", run_id, " attempt=", attempt, " rank=", rank, "/");
  for (int worker = 0; worker < 2; ++worker) {
    std::istringstream log(stack.WorkerLog(worker));
    std::string line;
    while (std::getline(log, line)) {
      if (line.find(started) == std::string::npos) continue;
      const size_t at = line.find(" pid=");
      int pid = 0;
      if (at != std::string::npos &&
          absl::SimpleAtoi(line.substr(at + 5, line.find(' ', at + 5) - at - 5), &pid)) {
        return pid;
      }
    }
  }
  return 0;
}

TEST_CASE("A 2-rank run trains on two workers, one rank each, and rank 0 alone reports",
          "[integration][slow][gang]") {
  Stack stack;
  // Two nodes of one slot each on a shared file system (the ranks share the checkpoints).
  const std::string shared = stack.dir() + "/shared";
  stack.StartWorker(1, shared);
  stack.StartWorker(1, shared);
  const int64_t sweep = stack.Submit(GangManifest(stack, "gang", 2e4)).sweep().id();
  const std::vector<v1::Run> runs = stack.WaitForRuns(sweep, Ended, 180);
  REQUIRE(runs.size() == 1);
  const v1::Run& run = runs[0];
  REQUIRE(run.state() == v1::RUN_STATE_SUCCEEDED);
  CHECK(run.attempt() == 1);
  CHECK(std::isfinite(run.val_loss()));

  // One rank on each worker, both ended well.
  const std::vector<std::string> ranks = RankRows(stack, run.id());
  REQUIRE(ranks.size() == 2);
  CHECK(absl::StartsWith(ranks[0], "1:0:"));
  CHECK(absl::EndsWith(ranks[0], ":SUCCEEDED"));
  CHECK(absl::StartsWith(ranks[1], "1:1:"));
  CHECK(absl::EndsWith(ranks[1], ":SUCCEEDED"));
  CHECK(ranks[0].substr(0, ranks[0].rfind(':')) != ranks[1].substr(0, ranks[1].rfind(':')));
  // The trainers really formed a group of two.
  std::ifstream rank_one_log(absl::StrCat(shared, "/run-", run.id(), "-1-rank1/stderr.log"));
  std::stringstream rank_one;
  rank_one << rank_one_log.rdbuf();
  CHECK(absl::StrContains(rank_one.str(), "rank 1 of 2 (gloo"));

  // Every evaluation stored once: only rank 0 reported.
  const std::vector<int64_t> val_steps = StoredSteps(stack, run.id(), "val_loss");
  REQUIRE(!val_steps.empty());
  CHECK(std::set<int64_t>(val_steps.begin(), val_steps.end()).size() == val_steps.size());
}

TEST_CASE("Killing one rank's trainer ends the other rank and the gang is retried",
          "[integration][slow][gang]") {
  Stack stack;
  const std::string shared = stack.dir() + "/shared";
  stack.StartWorker(1, shared);
  stack.StartWorker(1, shared);
  const int64_t sweep = stack.Submit(GangManifest(stack, "gang-kill", 2e5)).sweep().id();
  const int64_t run_id = stack.ListRuns(sweep).at(0).id();
  // Kill rank 1 once the gang trains (rank 0 has reported points).
  REQUIRE(WaitUntil([&] { return StoredSteps(stack, run_id, "train_loss").size() >= 2; }, 120));
  const pid_t rank_zero = TrainerPid(stack, run_id, 1, 0);
  const pid_t rank_one = TrainerPid(stack, run_id, 1, 1);
  REQUIRE(rank_zero > 0);
  REQUIRE(rank_one > 0);
  REQUIRE(::kill(rank_one, SIGKILL) == 0);
  // The other rank does not linger (its collective fails, or its worker is told to stop it).
  CHECK(WaitUntil([&] { return !std::filesystem::exists(absl::StrCat("/proc/", rank_zero)); }, 30));

  const std::vector<v1::Run> runs = stack.WaitForRuns(sweep, Ended, 180);
  REQUIRE(runs.at(0).state() == v1::RUN_STATE_SUCCEEDED);
  CHECK(runs.at(0).attempt() == 2);
  const std::vector<std::string> ranks = RankRows(stack, run_id);
  REQUIRE(ranks.size() == 4);
  // Attempt 1: one rank failed, the other failed with it or was stopped; attempt 2 succeeded.
  CHECK((absl::EndsWith(ranks[0], ":FAILED") || absl::EndsWith(ranks[0], ":STOPPED")));
  CHECK((absl::EndsWith(ranks[1], ":FAILED") || absl::EndsWith(ranks[1], ":STOPPED")));
  CHECK(absl::StartsWith(ranks[2], "2:0:"));
  CHECK(absl::EndsWith(ranks[2], ":SUCCEEDED"));
  CHECK(absl::StartsWith(ranks[3], "2:1:"));
}

}  // namespace
}  // namespace scalelab::testing
