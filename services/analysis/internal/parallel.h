// A parallel loop over indices for the multi-start fits and the bootstrap. Private to
// services/analysis.
#ifndef SCALELAB_SERVICES_ANALYSIS_INTERNAL_PARALLEL_H_
#define SCALELAB_SERVICES_ANALYSIS_INTERNAL_PARALLEL_H_

#include <functional>

namespace scalelab::analysis::internal {

// `threads` as asked, or std::thread::hardware_concurrency() (at least 1) when it is 0.
int ResolveThreads(int threads);

// Calls body(worker, index) once for every index in [0, count) on up to `threads` threads
// (resolved as above; the calling thread is one of them); worker is in [0, threads) and no two
// calls with the same worker overlap, so it can index per-thread scratch space. Indices are
// handed out dynamically, so `body` must not depend on which thread runs which index. `body`
// must not throw.
void ParallelFor(int count, int threads, const std::function<void(int worker, int index)>& body);

}  // namespace scalelab::analysis::internal

#endif  // SCALELAB_SERVICES_ANALYSIS_INTERNAL_PARALLEL_H_
