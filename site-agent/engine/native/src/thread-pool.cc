#include "thread-pool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace fedsfda {
namespace {

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv_start;
  std::condition_variable cv_done;
  const std::function<void(int, int)>* job = nullptr;
  int n_tasks = 0;
  std::atomic<int> next{0};
  int generation = 0;
  int active = 0;  // workers still running the current generation
  bool stop = false;
  int threads = 1;
  // One parallel region at a time: the addon is shared by every worker_thread of the process, so a
  // concurrent caller runs its tasks on its own thread instead of corrupting the pool's job slot.
  std::mutex call_mu;

  void run_tasks(int thread_id) {
    for (;;) {
      int t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks) break;
      (*job)(t, thread_id);
    }
  }

  void worker_main(int thread_id) {
    int seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu);
        cv_start.wait(lk, [&] { return stop || generation != seen; });
        if (stop) return;
        seen = generation;
      }
      run_tasks(thread_id);
      {
        std::lock_guard<std::mutex> lk(mu);
        if (--active == 0) cv_done.notify_one();
      }
    }
  }

  void start(int n) {
    threads = n < 1 ? 1 : n;
    for (int i = 1; i < threads; ++i) workers.emplace_back([this, i] { worker_main(i); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv_start.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    stop = false;
  }

  ~Pool() { shutdown(); }
};

Pool& pool() {
  static Pool* p = [] {
    auto* q = new Pool();
    unsigned hc = std::thread::hardware_concurrency();
    q->start(hc == 0 ? 1 : static_cast<int>(hc));
    return q;
  }();
  return *p;
}

}  // namespace

int pool_threads() { return pool().threads; }

void pool_set_threads(int n) {
  Pool& p = pool();
  std::lock_guard<std::mutex> region(p.call_mu);
  p.shutdown();
  p.start(n);
}

void parallel_for(int n_tasks, const std::function<void(int, int)>& fn) {
  Pool& p = pool();
  if (n_tasks <= 0) return;
  std::unique_lock<std::mutex> region(p.call_mu, std::try_to_lock);
  if (!region.owns_lock() || p.threads == 1 || n_tasks == 1) {
    for (int t = 0; t < n_tasks; ++t) fn(t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.job = &fn;
    p.n_tasks = n_tasks;
    p.next.store(0, std::memory_order_relaxed);
    p.active = static_cast<int>(p.workers.size());
    ++p.generation;
  }
  p.cv_start.notify_all();
  p.run_tasks(0);
  std::unique_lock<std::mutex> lk(p.mu);
  p.cv_done.wait(lk, [&] { return p.active == 0; });
  p.job = nullptr;
}

}  // namespace fedsfda
