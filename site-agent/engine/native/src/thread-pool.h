// A tiny persistent worker pool. Kernels split work into independent tasks; the calling (JS) thread
// takes part, so with T threads there are T-1 workers. Persistent threads avoid the ~50 us cost of
// spawning std::threads on every kernel call (a U-Net step issues hundreds of kernel calls).
#pragma once
#include <functional>

namespace fedsfda {

// Number of threads used by parallel_for (workers + caller).
int pool_threads();
// Resize the pool (n >= 1). Not thread-safe against concurrent parallel_for calls.
void pool_set_threads(int n);
// Run fn(task) for task in [0, n_tasks), spread over the pool; returns when all are done.
// Tasks are handed out dynamically (whichever thread is free takes the next index), so which thread runs
// a task depends on timing. Determinism contract for every kernel: a task's output may depend only on
// its task index, never on `thread` (use `thread` only to pick scratch memory that the task fully
// rewrites before reading), and tasks write disjoint outputs; reductions keep one partial per task or per
// fixed group of tasks and combine them in index order afterwards. Task counts and partitions are derived
// from the problem shape, not from pool_threads(), so results are also independent of the thread count
// and identical when parallel_for falls back to running every task on the calling thread.
void parallel_for(int n_tasks, const std::function<void(int task, int thread)>& fn);

// Memory-bound kernels touching fewer than this many elements run on the calling thread: a second thread
// barely helps a bandwidth-bound loop, and on an oversubscribed machine waiting for a descheduled worker
// costs milliseconds (measured: 3-15 ms stalls on 0.3 ms kernels at load average 10 on 2 cores).
constexpr long kSerialBelow = 1L << 20;

// parallel_for when `work` (elements touched) is large, a plain loop on the calling thread otherwise.
inline void parallel_for_work(long work, int n_tasks, const std::function<void(int task, int thread)>& fn) {
  if (work < kSerialBelow) {
    for (int t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  parallel_for(n_tasks, fn);
}

}  // namespace fedsfda
