#include "worker/child_process.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>

namespace scalelab::worker {
namespace {

ExitInfo WaitFor(ChildProcess& child) {
  for (int i = 0; i < 500; ++i) {
    if (auto exit = child.Poll()) return *exit;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  FAIL("child did not exit within 5 s");
  return {};
}

std::string ReadAll(int fd) {
  std::string out;
  char buffer[256];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  return out;
}

TEST_CASE("A child's stdout comes through the pipe and its stderr lands in a file",
          "[worker][unit]") {
  std::string err = "/tmp/scalelab_child_test_" + std::to_string(::getpid()) + ".log";
  auto child = ChildProcess::Spawn(
      {{"/bin/sh", "-c", "echo out-line; echo err-line >&2; exit 3"}, err, "", {}});
  REQUIRE(child.ok());
  CHECK(ReadAll((*child)->stdout_fd()) == "out-line\n");
  ExitInfo exit = WaitFor(**child);
  CHECK(exit.exit_code == 3);
  CHECK(exit.term_signal == 0);
  CHECK(TailOfFile(err, 5) == "err-line");
  std::remove(err.c_str());
}

TEST_CASE("A missing program is reported at spawn time", "[worker][unit]") {
  auto child = ChildProcess::Spawn({{"/nonexistent/scalelab-train"}, "/dev/null", "", {}});
  CHECK(absl::IsNotFound(child.status()));
  CHECK(child.status().message().find("/nonexistent/scalelab-train") != absl::string_view::npos);
}

TEST_CASE("A signalled child reports the signal", "[worker][unit]") {
  auto child = ChildProcess::Spawn({{"/bin/sleep", "30"}, "/dev/null", "", {}});
  REQUIRE(child.ok());
  (*child)->Signal(SIGTERM);
  ExitInfo exit = WaitFor(**child);
  CHECK(exit.exit_code == -1);
  CHECK(exit.term_signal == SIGTERM);
}

TEST_CASE("Only the last lines of a log are kept for failure messages", "[worker][unit]") {
  std::string path = "/tmp/scalelab_tail_test_" + std::to_string(::getpid());
  {
    std::ofstream out(path);
    for (int i = 1; i <= 30; ++i) out << "line " << i << "\n";
  }
  CHECK(TailOfFile(path, 2) == "line 29\nline 30");
  CHECK(TailOfFile("/nonexistent", 2).empty());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace scalelab::worker
