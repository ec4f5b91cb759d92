#include "services/analysis/internal/parallel.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

namespace scalelab::analysis::internal {

int ResolveThreads(int threads) {
  if (threads > 0) return threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

void ParallelFor(int count, int threads, const std::function<void(int worker, int index)>& body) {
  if (count <= 0) return;
  const int workers = std::min(ResolveThreads(threads), count);
  // One index at a time: a fit from a bad start can take 50x longer than one from a good start,
  // so static chunks would leave threads idle.
  std::atomic<int> next{0};
  auto drain = [&](int worker) {
    for (int index = next.fetch_add(1); index < count; index = next.fetch_add(1)) {
      body(worker, index);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (int worker = 1; worker < workers; ++worker) pool.emplace_back(drain, worker);
  drain(0);
  for (std::thread& thread : pool) thread.join();
}

}  // namespace scalelab::analysis::internal
