#include "scheduler/leader.h"

#include <unistd.h>

#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace scalelab::scheduler {

namespace {

int64_t SteadyNow() { return std::chrono::steady_clock::now().time_since_epoch().count(); }

std::string DefaultHolder() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::random_device random;
  return absl::StrCat(host, ":", getpid(), ":", random() % 1000000);
}

}  // namespace

absl::Status LeaderOptions::Validate() const {
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("leader.ttl: expected > 0, got ", absl::FormatDuration(ttl)));
  }
  if (renew_interval <= absl::ZeroDuration() || renew_interval * 3 > ttl) {
    return absl::InvalidArgumentError(
        absl::StrCat("leader.renew_interval: expected > 0 and at most a third of the ttl (",
                     absl::FormatDuration(ttl), "), got ", absl::FormatDuration(renew_interval)));
  }
  return absl::OkStatus();
}

LeaderLease::LeaderLease(services::Store* store, LeaderOptions options, OnChange on_change)
    : store_(store), options_(std::move(options)), on_change_(std::move(on_change)) {
  if (options_.holder.empty()) options_.holder = DefaultHolder();
}

LeaderLease::~LeaderLease() { Stop(); }

void LeaderLease::Start() {
  store_->SetLeaderFence(-1);  // a standby's leader-only writes must not land
  Attempt();
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(options_.renew_interval)) Attempt();
  });
}

void LeaderLease::Attempt() {
  const int64_t started = SteadyNow();
  const int64_t held = epoch_.load();
  auto epoch = store_->AcquireLeadership(options_.holder, held, options_.ttl);
  if (!epoch.ok()) {
    // Cannot reach the database: keep acting only until the lease we had runs out.
    spdlog::warn("leader lease: {}", epoch.status().ToString());
    if (held != 0 && !IsLeader()) {
      epoch_.store(0);
      store_->SetLeaderFence(-1);
      spdlog::warn("leader lease epoch {} lapsed: standing by", held);
      if (on_change_) on_change_(false, held);
    }
    return;
  }
  if (*epoch != 0) {
    valid_until_.store(started + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     absl::ToChronoNanoseconds(options_.ttl))
                                     .count());
    epoch_.store(*epoch);
    store_->SetLeaderFence(*epoch);
    if (held != *epoch) {
      spdlog::info("leader lease taken holder={} epoch={}", options_.holder, *epoch);
      if (on_change_) on_change_(true, *epoch);
    }
  } else if (held != 0) {
    epoch_.store(0);
    valid_until_.store(0);
    // A fence that can never pass again, so no leader-only write of ours lands any more.
    store_->SetLeaderFence(-1);
    spdlog::warn("leader lease epoch {} lost: another scheduler acts now", held);
    if (on_change_) on_change_(false, held);
  }
}

bool LeaderLease::IsLeader() const { return epoch_.load() != 0 && SteadyNow() < valid_until_; }

void LeaderLease::Stop() {
  if (stopped_.exchange(true)) return;
  stop_.Notify();
  if (thread_.joinable()) thread_.join();
  const int64_t held = epoch_.exchange(0);
  if (held != 0) {
    store_->SetLeaderFence(-1);
    if (auto status = store_->ReleaseLeadership(options_.holder, held); !status.ok()) {
      spdlog::warn("releasing the leader lease: {}", status.ToString());
    } else {
      spdlog::info("leader lease epoch {} released", held);
    }
  }
}

}  // namespace scalelab::scheduler
